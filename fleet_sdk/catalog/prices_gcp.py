"""Compute Engine on-demand list prices in USD, per region: machine types (per vCPU and per GB of memory
of each family, or per shared-core type), the GPUs that attach to N1 machines, persistent disks per GB
a month, and the external IPv4 address every instance of this project has.

A month is 730 hours (prices.HOURS_A_MONTH), as Google's calculator counts it. These are list prices:
sustained-use discounts (N1 and its GPUs, N2, N2D, C2 running all month: up to 30% off), committed-use
and spot prices are left out, so a bill can be lower. Machine types, disks and the IPv4 are from
pricing.yml of https://github.com/Cyclenerd/google-cloud-pricing-cost-calculator (built from the Cloud
Billing Catalog API), generated on TAKEN; the GPUs from catalogs/v8/gcp/vms.csv of
https://github.com/skypilot-org/skypilot-catalog (commit 006059e0f18a, also from the Cloud Billing
Catalog API), read on GPUS_TAKEN. scripts/refresh_gcp_prices.py prints the tables anew (README "Cost").
"""

from __future__ import annotations

from fleet_sdk.catalog import gcp
from fleet_sdk.catalog.prices import Price

CURRENCY = "USD"
TAKEN = "2026-07-30"
GPUS_TAKEN = "2026-11-29"
# families sold only in their standard shape: one rate per vCPU, its memory included
PER_VCPU = ("c2", "t2d", "t2a")
# G2 machine types come with NVIDIA L4 GPUs, priced apart (column g2:l4): vCPUs -> L4s
G2_L4 = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}
# an external IPv4 in use by a VM, in every region
EXTERNAL_IPV4_HOURLY = Price(0.005, CURRENCY, TAKEN)
# the disk type of a boot disk created without one (graph.clouds.gcp gives none): the API's default
BOOT_DISK_TYPE = "pd-standard"


def _parse(text: str) -> dict[str, dict[str, float]]:
    """column -> region -> value of a table: a header of column names, a row per region, `-` unsold."""
    header, *rows = text.strip().splitlines()
    columns = header.split()[1:]
    found: dict[str, dict[str, float]] = {c: {} for c in columns}
    for row in rows:
        region, *values = row.split()
        for column, value in zip(columns, values, strict=True):
            if value != "-":
                found[column][region] = float(value)
    return found


# USD an hour per vCPU and per GB of memory
_MACHINES_A = """
region                         e2:vcpu         e2:gb       n1:vcpu         n1:gb       n2:vcpu         n2:gb
us-central1                 0.02181159    0.00292353      0.031611      0.004237      0.031611      0.004237
us-east1                    0.02181159    0.00292353      0.031611      0.004237      0.031611      0.004237
us-east4                    0.02456745    0.00329199      0.035605      0.004771      0.035605      0.004771
us-east5                    0.02181159    0.00292353      0.031611      0.004237      0.031611      0.004237
us-south1                   0.02573768   0.003449765    0.03730098    0.00499966    0.03730098    0.00499966
us-west1                    0.02181159    0.00292353      0.031611      0.004237      0.031611      0.004237
us-west2                     0.0261993    0.00351141       0.03797      0.005089       0.03797      0.005089
us-west3                     0.0261993    0.00351141       0.03797      0.005089       0.03797      0.005089
us-west4                    0.02456745    0.00329199      0.035605      0.004771      0.035603      0.004771
northamerica-northeast1     0.02401338    0.00321816      0.034802      0.004664      0.034802      0.004664
northamerica-northeast2     0.02401338    0.00321816      0.034802      0.004664      0.034802      0.004664
southamerica-east1           0.0346242    0.00464025       0.05018      0.006725       0.05018      0.006725
europe-west1                0.02399337    0.00321609      0.034773      0.004661      0.034773      0.004661
europe-west2                 0.0281037    0.00376602       0.04073      0.005458       0.04073      0.005458
europe-west3                 0.0281037    0.00376602       0.04073      0.005458       0.04073      0.005458
europe-west4                0.02401338    0.00321816      0.034802      0.004664      0.034802      0.004664
europe-west6                0.02857225    0.00382977      0.041409       0.00555      0.041409      0.005551
europe-west9                  0.025302      0.003391    0.03666876    0.00491492    0.03666876    0.00491492
europe-north1               0.02401614    0.00321816      0.034806      0.004664      0.034806      0.004664
europe-central2              0.0263922    0.00353742       0.03825      0.005127       0.03825      0.005127
europe-southwest1             0.025738       0.00345    0.03730098    0.00499966    0.03730098    0.00499966
asia-east1                  0.02525538    0.00338514      0.036602      0.004906      0.036602      0.004906
asia-east2                  0.03051939    0.00409032      0.044231      0.005928      0.044231      0.005928
asia-northeast1             0.02802642    0.00373911      0.040618      0.005419      0.040618      0.005419
asia-northeast3             0.02802642    0.00373911      0.040618      0.005419      0.040595      0.005441
asia-south1                  0.0261993    0.00351072       0.03797      0.005088       0.03797      0.005088
asia-southeast1             0.02690931    0.00360594      0.038999      0.005226      0.038999      0.005226
australia-southeast1        0.03095064    0.00414759      0.044856      0.006011      0.044856      0.006011
me-west1                    0.02399275   0.003215883     0.0347721     0.0046607     0.0347721     0.0046607
africa-south1               0.02399337    0.00321609      0.034773      0.004661      0.034773      0.004661
"""

_MACHINES_B = """
region                        n2d:vcpu        n2d:gb      c2d:vcpu        c2d:gb       c3:vcpu         c3:gb
us-central1                   0.027502      0.003686      0.029563      0.003959       0.03465      0.003938
us-east1                      0.027502      0.003686      0.029563      0.003959       0.03465      0.003938
us-east4                      0.030976      0.004151      0.033296      0.004458       0.03465      0.003938
us-east5                      0.027502      0.003686      0.029563      0.003959       0.03465      0.003938
us-south1                   0.03245236    0.00434948    0.03488434    0.00467162      0.040887    0.00464684
us-west1                      0.027502      0.003686      0.029563      0.003959       0.03465      0.003938
us-west2                      0.033034      0.004427      0.035537      0.004759    0.04165277    0.00473387
us-west3                      0.033034      0.004427      0.035537      0.004759    0.04165277    0.00473387
us-west4                      0.030976      0.004151      0.033296      0.004458     0.0390263    0.00443537
northamerica-northeast1       0.030278      0.004058      0.032551      0.004359    0.03815312    0.00433613
northamerica-northeast2       0.030278      0.004058      0.032551      0.004359    0.03815312    0.00433613
southamerica-east1            0.043657      0.005851      0.046942      0.006286    0.05502074    0.00625315
europe-west1                  0.030253      0.004055      0.032551      0.004359    0.03815312    0.00433613
europe-west2                  0.035435      0.004748      0.038088        0.0051      0.039501    0.00448932
europe-west3                  0.035435      0.004748      0.038088        0.0051      0.040887    0.00464684
europe-west4                  0.030278      0.004058      0.032551      0.004359     0.0363825     0.0041349
europe-west6                  0.036026      0.004829      0.038729      0.005186    0.04539392    0.00515851
europe-west9                0.03190232    0.00427576    0.03429308    0.00459244      0.040194    0.00456808
europe-north1                 0.030281      0.004058      0.032551      0.004359    0.03815312    0.00433613
europe-central2               0.033277       0.00446      0.035772        0.0048     0.0419243    0.00476473
europe-southwest1           0.03245236    0.00434948    0.03488434    0.00467162      0.040887    0.00464684
asia-east1                    0.031844      0.004268      0.034231      0.004584    0.04012123    0.00455981
asia-east2                    0.038481      0.005157      0.041355      0.005538    0.04847188    0.00550887
asia-northeast1               0.035338      0.004715      0.037964      0.005084    0.04449753    0.00505718
asia-northeast3               0.035318      0.004734      0.037964      0.005084    0.04449753    0.00505718
asia-south1                   0.018151      0.002433      0.019512      0.002613      0.036036    0.00409552
asia-southeast1               0.033929      0.004547      0.036471      0.004884    0.04274771    0.00485831
australia-southeast1          0.039025       0.00523      0.041964      0.005619     0.0433125     0.0049225
me-west1                     0.0302522     0.0040546     0.0325193     0.0043549      0.038115     0.0043318
africa-south1                 0.030253      0.004055      0.032551      0.004359     0.0381531     0.0043361
"""

_MACHINES_C = """
region                        c4a:vcpu        c4a:gb       c2:vcpu         c2:gb      t2d:vcpu        t2d:gb
us-central1                    0.03086       0.00351      0.052202           0.0      0.042246           0.0
us-east1                       0.03086       0.00351      0.052202           0.0      0.042246           0.0
us-east4                       0.03086       0.00351      0.058786           0.0       0.04758           0.0
us-east5                       0.03086       0.00351      0.052202           0.0      0.042246           0.0
us-south1                     0.036415      0.004142    0.06159836           0.0    0.04985028           0.0
us-west1                       0.03086       0.00351      0.052202           0.0      0.042246           0.0
us-west2                    0.03709681    0.00421937      0.062702           0.0      0.050742           0.0
us-west3                             -             -      0.062702           0.0      0.050742           0.0
us-west4                    0.03475762    0.00395331      0.058786           0.0       0.04758           0.0
northamerica-northeast1     0.03397995    0.00386486      0.057468           0.0       0.04651           0.0
northamerica-northeast2     0.03397995    0.00386486      0.057468           0.0       0.04651           0.0
southamerica-east1                   -             -       0.08286           0.0      0.067061           0.0
europe-west1                0.03397995    0.00386486      0.057425           0.0      0.046473           0.0
europe-west2                   0.03518      0.004001      0.067253           0.0      0.054427           0.0
europe-west3                  0.036415      0.004142      0.067253           0.0      0.054427           0.0
europe-west4                    0.0324      0.003686      0.057468           0.0       0.04651           0.0
europe-west6                         -             -      0.068386           0.0      0.055342           0.0
europe-west9                         -             -    0.06055432           0.0    0.04900536           0.0
europe-north1               0.03397995    0.00386486      0.057472           0.0      0.046513           0.0
europe-central2             0.03733863    0.00424733      0.063162           0.0      0.051117           0.0
europe-southwest1             0.036415      0.004142    0.06159836           0.0    0.04985028           0.0
asia-east1                  0.03573279    0.00406423      0.060443           0.0      0.048916           0.0
asia-east2                           -             -       0.07304           0.0      0.059109           0.0
asia-northeast1             0.03963041    0.00450754      0.066964           0.0      0.054198           0.0
asia-northeast3                      -             -      0.066964           0.0      0.054254           0.0
asia-south1                   0.032094       0.00365      0.062698           0.0      0.027883           0.0
asia-southeast1             0.03807198    0.00433029      0.064396           0.0      0.052117           0.0
australia-southeast1           0.03858      0.004388      0.074068           0.0      0.059945           0.0
me-west1                             -             -     0.0574222           0.0     0.0464706           0.0
africa-south1                        -             -      0.057425           0.0      0.046473           0.0
"""

_MACHINES_D = """
region                        t2a:vcpu        t2a:gb       g2:vcpu         g2:l4
us-central1                     0.0385           0.0   0.036698004   0.560040239
us-east1                        0.0385           0.0   0.036698004   0.560040239
us-east4                             -             -   0.036577837    0.55820646
us-east5                             -             -    0.04133296     0.6307733
us-south1                            -             -   0.043303646     0.6608475
us-west1                        0.0385           0.0   0.036698004   0.560040239
us-west2                             -             -   0.044114674     0.6732244
us-west3                             -             -   0.044114674     0.6732244
us-west4                             -             -    0.04133296     0.6307733
northamerica-northeast1              -             -   0.040408176     0.6166603
northamerica-northeast2              -             -   0.040408176     0.6166603
southamerica-east1                   -             -   0.058272764     0.8892879
europe-west1                         -             -   0.040408176     0.6166603
europe-west2                         -             -   0.041783835   0.637653962
europe-west3                         -             -   0.043249936   0.660027786
europe-west4                0.04044409           0.0    0.03857144   0.588630286
europe-west6                         -             -   0.048076948     0.7834403
europe-west9                         -             -    0.04256969     0.6496467
europe-north1                        -             -   0.040408176     0.6166603
europe-central2                      -             -   0.044402258     0.7215558
europe-southwest1                    -             -   0.043303646     0.6608475
asia-east1                           -             -   0.042492622     0.6484706
asia-east2                           -             -   0.051336842     0.7834403
asia-northeast1                      -             -   0.047127576     0.7192037
asia-northeast3                      -             -   0.047127576     0.7192037
asia-south1                          -             -   0.038200909   0.582975726
asia-southeast1                0.04748           0.0   0.045274332     0.6909216
australia-southeast1                 -             -   0.045856357   0.699803785
me-west1                             -             -   0.040367802     0.6160443
africa-south1                        -             -   0.048000992     0.7325326
"""

# USD an hour per machine
_SHARED_CORE = """
region                        e2-micro      e2-small     e2-medium      f1-micro      g1-small
us-central1               0.0083764275   0.016752855    0.03350571        0.0076        0.0257
us-east1                  0.0083764275   0.016752855    0.03350571        0.0076        0.0257
us-east4                  0.0094338525   0.018867705    0.03773541        0.0086        0.0289
us-east5                  0.0083764275   0.016752855    0.03350571        0.0076        0.0257
us-south1                  0.009884185    0.01976837    0.03953674      0.008968      0.030326
us-west1                  0.0083764275   0.016752855    0.03350571        0.0076        0.0257
us-west2                   0.010061235    0.02012247    0.04024494        0.0091        0.0308
us-west3                   0.010061235    0.02012247    0.04024494        0.0091        0.0308
us-west4                  0.0094338525   0.018867705    0.03773541        0.0086        0.0289
northamerica-northeast1    0.009221505    0.01844301    0.03688602        0.0084        0.0283
northamerica-northeast2    0.009221505    0.01844301    0.03688602        0.0084        0.0283
southamerica-east1           0.0132963     0.0265926     0.0531852        0.0118          0.04
europe-west1              0.0092144325   0.018428865    0.03685773        0.0086        0.0285
europe-west2               0.010791945    0.02158389    0.04316778        0.0096        0.0324
europe-west3               0.010791945    0.02158389    0.04316778        0.0096        0.0324
europe-west4               0.009221505    0.01844301    0.03688602        0.0084        0.0283
europe-west6              0.0109728325   0.021945665    0.04389133          0.01        0.0337
europe-west9                 0.0097165      0.019433      0.038866      0.008816      0.029812
europe-north1              0.009222195    0.01844439    0.03688878        0.0084        0.0283
europe-central2             0.01013547    0.02027094    0.04054188        0.0096        0.0324
europe-southwest1            0.0098845      0.019769      0.039538      0.008968      0.030326
asia-east1                 0.009698985    0.01939797    0.03879594         0.009          0.03
asia-east2                0.0117201675   0.023440335    0.04688067        0.0106        0.0359
asia-northeast1            0.010745715    0.02149143    0.04298286        0.0092        0.0322
asia-northeast3            0.010745715    0.02149143    0.04298286        0.0092        0.0322
asia-south1                0.010060545    0.02012109    0.04024218        0.0091        0.0308
asia-southeast1           0.0103332675   0.020666535    0.04133307        0.0092        0.0311
australia-southeast1        0.01188525     0.0237705      0.047541        0.0106        0.0357
me-west1                  0.0092140705   0.018428141   0.036856282       0.00836       0.02827
africa-south1             0.0092144325   0.018428865    0.03685773        0.0086        0.0285
"""

# USD an hour per GPU
_GPUS = """
region                    nvidia-tesla-t4  nvidia-tesla-p4  nvidia-tesla-p100  nvidia-tesla-v100
us-central1                          0.35              0.6               1.46               2.48
us-east1                             0.35                -               1.46               2.48
us-east4                             0.37              0.6                  -                  -
us-east5                                -                -                  -                  -
us-south1                               -                -                  -                  -
us-west1                             0.35                -               1.46               2.48
us-west2                          0.42074             0.72                  -                  -
us-west3                          0.42074                -                  -                  -
us-west4                             0.37                -                  -                  -
northamerica-northeast1           0.38538             0.65                  -                  -
northamerica-northeast2                 -                -                  -                  -
southamerica-east1                   0.48                -                  -                  -
europe-west1                         0.35                -                1.6                  -
europe-west2                        0.399                -                  -                  -
europe-west3                         0.41                -                  -                  -
europe-west4                       0.3675             0.63              1.533              2.604
europe-west6                            -                -                  -                  -
europe-west9                            -                -                  -                  -
europe-north1                           -                -                  -                  -
europe-central2                      0.41                -                  -                  -
europe-southwest1                       -                -                  -                  -
asia-east1                           0.35                -                1.6               2.48
asia-east2                           0.44                -                  -                  -
asia-northeast1                      0.37                -                  -                  -
asia-northeast3                      0.37                -                  -                  -
asia-south1                          0.41                -                  -                  -
asia-southeast1                      0.37             0.65                  -                  -
australia-southeast1                 0.44             0.65                1.6                  -
me-west1                            0.385                -                  -                  -
africa-south1                           -                -                  -                  -
"""

# USD a GB a month
_DISKS = """
region                     pd-standard   pd-balanced        pd-ssd
us-central1                       0.04           0.1          0.17
us-east1                          0.04           0.1          0.17
us-east4                         0.044          0.11         0.187
us-east5                          0.04           0.1          0.17
us-south1                       0.0472          0.12        0.2006
us-west1                          0.04           0.1          0.17
us-west2                         0.048          0.12         0.204
us-west3                         0.048          0.12         0.204
us-west4                         0.044          0.11         0.187
northamerica-northeast1          0.044          0.11         0.187
northamerica-northeast2          0.044          0.11         0.187
southamerica-east1                0.06          0.15         0.255
europe-west1                      0.04           0.1          0.17
europe-west2                     0.048          0.12         0.204
europe-west3                     0.048          0.12         0.204
europe-west4                     0.044          0.11         0.187
europe-west6                     0.052          0.13         0.221
europe-west9                    0.0464         0.116        0.1972
europe-north1                    0.044          0.11         0.187
europe-central2                  0.048          0.13         0.204
europe-southwest1               0.0472          0.12        0.2006
asia-east1                        0.04           0.1          0.17
asia-east2                      0.0498          0.11         0.187
asia-northeast1                  0.052          0.13         0.221
asia-northeast3                  0.052          0.13         0.221
asia-south1                      0.048          0.12         0.204
asia-southeast1                  0.044          0.11         0.187
australia-southeast1             0.054         0.135          0.23
me-west1                         0.044          0.11         0.187
africa-south1                  0.05232      0.109788     0.1866395
"""

_RATES = {k: v for t in (_MACHINES_A, _MACHINES_B, _MACHINES_C, _MACHINES_D) for k, v in _parse(t).items()}
_SHARED = _parse(_SHARED_CORE)
_GPU = _parse(_GPUS)
_DISK = _parse(_DISKS)


def machine_hourly(machine_type: str, region: str) -> Price | None:
    """The machine type's price an hour in `region` (its GPUs included for G2); None when unpriced."""
    if machine_type in gcp.SHARED_CORE:
        found = _SHARED.get(machine_type, {}).get(region)
        return None if found is None else Price(found, CURRENCY, TAKEN)
    known = gcp.machine_type(machine_type)
    if known is None:
        return None
    family, kind = machine_type.split("-")[:2]
    vcpu = _RATES.get(f"{family}:vcpu", {}).get(region)
    if vcpu is None:
        return None
    shape = known[0]
    if family == "g2":
        l4 = _RATES["g2:l4"].get(region)
        return None if l4 is None else Price(shape.vcpus * vcpu + G2_L4[shape.vcpus] * l4, CURRENCY, TAKEN)
    if family in PER_VCPU:
        return Price(shape.vcpus * vcpu, CURRENCY, TAKEN) if kind == "standard" else None
    gb = _RATES[f"{family}:gb"][region]
    return Price(shape.vcpus * vcpu + shape.memory_gb * gb, CURRENCY, TAKEN)


def gpu_hourly(gpu_type: str, region: str) -> Price | None:
    """One attached GPU's price an hour in `region`; None when unpriced (not sold there)."""
    found = _GPU.get(gpu_type, {}).get(region)
    return None if found is None else Price(found, CURRENCY, GPUS_TAKEN)


def disk_monthly_per_gb(disk_type: str, region: str) -> Price | None:
    """A persistent disk's price a GB a month in `region`; None when unpriced."""
    found = _DISK.get(disk_type, {}).get(region)
    return None if found is None else Price(found, CURRENCY, TAKEN)


def external_ipv4_hourly(region: str) -> Price | None:
    return EXTERNAL_IPV4_HOURLY if region in gcp.REGIONS else None


def taken() -> str:
    return f"{TAKEN} to {GPUS_TAKEN}"
