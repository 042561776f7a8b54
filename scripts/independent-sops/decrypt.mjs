// Decrypts sops documents without any fleet_sdk code: JavaScript only, run by tests/test_sops_independent.py.
//
// stdin:  {"cases": [{"document": "<sops JSON text>", "identity": "AGE-SECRET-KEY-1..."}, ...]}
// stdout: {"results": [{...}, ...]}, one result per case, in order:
//   sops_age        what the npm package `sops-age` returns for the document read as a JSON store,
//                   i.e. {"data": "<plaintext as a UTF-8 string>"} (sops-age has no binary store)
//   sops_age_error  its error message instead, if it failed
//   data_b64        the raw plaintext bytes, decrypted here from the spec (age-encryption + @noble/ciphers),
//                   because sops-age decodes every value as UTF-8 and so cannot return arbitrary bytes
//   data_key_hex    the 32-byte data key unwrapped from the matching `enc`
//   recipient       the recipient whose `enc` the identity opened
//   mac_stored      the decrypted `sops.mac` (AAD = lastmodified); sops-age 4.0.2 never checks the MAC,
//   mac_computed    so it is checked here: uppercase hex SHA-512 of the plaintext (spec §1.5)
//   error           set if the spec decryption failed
//
// Everything here is written from reference/sops-zerotier.md Part 1 and the packages' own docs; it shares
// no code with fleet_sdk (Python, pyrage/rust-age, pyca/cryptography/OpenSSL).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

import { gcm } from "@noble/ciphers/aes";
import { Decrypter, armor } from "age-encryption";
import { decryptSops } from "sops-age";

const ENC = /^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]$/;

function openValue(key, value, aad) {
  const m = ENC.exec(value);
  if (!m) throw new Error(`not an ENC[AES256_GCM,...] value: ${value.slice(0, 40)}`);
  const [, data, iv, tag, type] = m;
  if (type !== "str") throw new Error(`unexpected type ${type}`);
  const sealed = Buffer.concat([Buffer.from(data, "base64"), Buffer.from(tag, "base64")]);
  return gcm(key, Buffer.from(iv, "base64"), new TextEncoder().encode(aad)).decrypt(sealed);
}

function ageEntries(doc) {
  const meta = doc.sops ?? {};
  let entries = meta.age ?? [];
  if (entries.length === 0) {
    for (const group of meta.key_groups ?? []) entries = entries.concat(group.age ?? []);
  }
  return entries;
}

async function unwrapDataKey(doc, identity) {
  const failures = [];
  for (const entry of ageEntries(doc)) {
    try {
      const decrypter = new Decrypter();
      decrypter.addIdentity(identity);
      const key = await decrypter.decrypt(armor.decode(entry.enc), "uint8array");
      if (key.length !== 32) throw new Error(`data key has ${key.length} bytes`);
      return { key, recipient: entry.recipient };
    } catch (err) {
      failures.push(`${entry.recipient}: ${err.message}`);
    }
  }
  throw new Error(`no age entry opens with this identity (${failures.join("; ")})`);
}

async function byTheSpec(text, identity) {
  const doc = JSON.parse(text);
  const { key, recipient } = await unwrapDataKey(doc, identity);
  const plaintext = doc.data === "" ? new Uint8Array() : openValue(key, doc.data, "data:");
  const macStored = new TextDecoder().decode(openValue(key, doc.sops.mac, doc.sops.lastmodified));
  const macComputed = createHash("sha512").update(plaintext).digest("hex").toUpperCase();
  return {
    data_b64: Buffer.from(plaintext).toString("base64"),
    data_key_hex: Buffer.from(key).toString("hex"),
    recipient,
    mac_stored: macStored,
    mac_computed: macComputed,
  };
}

async function run({ document, identity }) {
  const result = {};
  try {
    result.sops_age = await decryptSops(document, { secretKey: identity, fileType: "json" });
  } catch (err) {
    result.sops_age_error = String(err.message ?? err);
  }
  try {
    Object.assign(result, await byTheSpec(document, identity));
  } catch (err) {
    result.error = String(err.message ?? err);
  }
  return result;
}

const { cases } = JSON.parse(readFileSync(0, "utf-8"));
const results = [];
for (const c of cases) results.push(await run(c));
process.stdout.write(JSON.stringify({ results }));
