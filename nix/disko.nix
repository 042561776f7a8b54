# disko.devices of one machine, read from the JSON fleet_sdk writes (machines/<machine>/disko.json).
#
# A function of the fleet repository and the machine name that returns a NixOS module:
#
#   # flake.nix (flake-parts or plain), next to disko's own module:
#   nixosConfigurations.web = inputs.nixpkgs.lib.nixosSystem {
#     modules = [
#       inputs.disko.nixosModules.disko
#       (import ./nix/disko.nix { flakeRoot = ./.; machine = "web"; })
#       ./machines/web/configuration.nix
#     ];
#   };
#
# flakeRoot may be a path (./.), the flake itself (self) or a path string. In a flake the JSON file
# must be tracked by git (flakes do not see untracked files); fleet_sdk `git add`s the files it writes.
#
# The module is a plain attribute set (no config, lib or pkgs needed), so it also evaluates without
# NixOS, e.g. in tests:
#   nix-instantiate --eval --strict --json -A disko.devices \
#     --expr '(import ./nix/disko.nix { flakeRoot = /path/to/repo; machine = "web"; })'
{ flakeRoot, machine }:
let
  # `+` keeps a path a path: the file is read in place, never copied into the Nix store.
  file = flakeRoot + "/machines/${machine}/disko.json";
in
{
  # Module-system errors about these options then name the JSON file instead of this module.
  _file = toString file;
  disko.devices =
    if builtins.pathExists file then
      builtins.fromJSON (builtins.readFile file)
    else
      throw "${toString file} does not exist: write it with `fleet disko render ${machine}` (and git add it)";
}
