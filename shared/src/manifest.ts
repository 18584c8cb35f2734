// The model manifest (models/manifest.json): which model files the services run, verified by
// sha256 before any is loaded.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256Hex } from './ids.ts';

export interface ManifestEntry {
  name: string;
  version: string;
  task: 'face-detection' | 'forgery-localization' | 'face-landmarks';
  /** Relative to the manifest's folder's parent (the repository root). */
  path: string;
  sha256: string;
  inputSize: number;
  licence: string;
  /** forgery-localization only: see the model card. */
  cropScale?: number;
  input?: string;
  output?: string;
  pixelThreshold?: number;
  faceThreshold?: number;
  uncertainBand?: [number, number];
  /** Share of the highest face pixels averaged into the face score. */
  faceTopFraction?: number;
  /**
   * forgery-localization only: the levels at which this model's cue maps justify a claim in
   * an explanation, in the units of RegionCues (colour in percent points of chromaticity).
   * `regions` holds levels per region family ("eye", "lip", "cheek"...) measured on real faces
   * (scripts/measure-cue-thresholds.ts), over the global ones.
   */
  cueThresholds?: CueLevels & { regions?: Record<string, CueLevels> };
  /** forgery-localization only: a kind of edit (Face.manipulations) is named from this probability. */
  typeThreshold?: number;
}

/** Levels of the cue maps that justify a claim (see ManifestEntry.cueThresholds). */
export interface CueLevels {
  blurBelow?: number;
  sharpenAbove?: number;
  colourAbove?: number;
  boundaryAbove?: number;
}

export interface Manifest {
  models: ManifestEntry[];
}

export class ModelIntegrityError extends Error {}

export async function readManifest(manifestPath: string): Promise<Manifest & { root: string }> {
  const m = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
  return { ...m, root: path.resolve(path.dirname(manifestPath), '..') };
}

export function findModel(m: Manifest, name: string): ManifestEntry {
  const e = m.models.find((x) => x.name === name);
  if (!e) throw new ModelIntegrityError(`model "${name}" is not in the manifest`);
  return e;
}

/** The model file's bytes, after checking them against the manifest's sha256. */
export async function loadVerifiedModel(root: string, e: ManifestEntry): Promise<{ file: string; bytes: Buffer }> {
  const file = path.resolve(root, e.path);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch {
    throw new ModelIntegrityError(`model file ${e.path} is missing; run "make models" (node scripts/fetch-models.mjs)`);
  }
  const actual = sha256Hex(bytes);
  if (actual !== e.sha256) throw new ModelIntegrityError(`model file ${e.path} has sha256 ${actual}, the manifest says ${e.sha256}`);
  return { file, bytes };
}
