// Writes one analysis as files for people and programs: <name>.json (proto3 JSON of Analysis),
// <name>.mask.png and <name>.overlay.png.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ObjectStore } from '@tampertrace/shared';
import type { ObjectRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { analysisJson } from '@tampertrace/ingest/http';

export { analysisJson };

/** Output base names: the input's name without extension, made unique within one run. */
export function outputNames(inputs: string[]): string[] {
  const used = new Map<string, number>();
  return inputs.map((p) => {
    const base = path.basename(p).replace(/\.[^.]+$/, '') || 'input';
    const n = (used.get(base) ?? 0) + 1;
    used.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  });
}

export async function writeOutputs(
  store: ObjectStore,
  a: Analysis,
  outDir: string,
  name: string,
  overlay: (a: Analysis) => Promise<ObjectRef | undefined>,
): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const written: string[] = [];
  const json = path.join(outDir, `${name}.json`);
  await writeFile(json, JSON.stringify(analysisJson(a), null, 2) + '\n');
  written.push(json);
  for (const [ref, suffix] of [
    [a.artifacts?.mask, 'mask.png'],
    [await overlay(a), 'overlay.png'],
  ] as const) {
    if (!ref?.key) continue;
    const file = path.join(outDir, `${name}.${suffix}`);
    await writeFile(file, await store.get(ref.bucket, ref.key));
    written.push(file);
  }
  return written;
}
