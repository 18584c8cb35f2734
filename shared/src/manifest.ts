// The model manifest (models/manifest.json): which model files the services run, verified by
// sha256 before any is loaded.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.ts';
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
  /**
   * forgery-localization, contract v2 only: the name of the optional [N, K] output of independent
   * per-face probabilities, one per kind of edit (models/README.md).
   */
  typesOutput?: string;
  /** The K kinds of that output, in its order: names of the ManipulationType enum without its prefix ("BLEND", "INPAINT", ...). */
  manipulationTypes?: string[];
  /** A kind of edit (Face.manipulations) is found, and named, at or above this probability; none found reads "no edit found". */
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

/**
 * What the contract asks of a forgery-localization entry's own fields, checked before its file
 * is loaded so that a half-written entry stops the service with a clear message.
 * `kinds`: the names manipulationTypes may use (the ManipulationType enum's, passed in so that
 * this module needs no generated code).
 */
export function checkLocalizerEntry(e: ManifestEntry, kinds: readonly string[]): void {
  const bad = (msg: string) => new ModelIntegrityError(`manifest entry "${e.name}": ${msg}`);
  if (e.pixelThreshold === undefined || !e.uncertainBand) throw bad('a localizer needs pixelThreshold and uncertainBand');
  const v2 = [e.typesOutput, e.manipulationTypes, e.typeThreshold].filter((x) => x !== undefined).length;
  if (v2 === 0) return;
  if (v2 !== 3) throw bad('typesOutput, manipulationTypes and typeThreshold go together');
  if (!e.manipulationTypes!.length) throw bad('manipulationTypes is empty');
  const unknown = e.manipulationTypes!.filter((k) => !kinds.includes(k));
  if (unknown.length) throw bad(`unknown manipulation types ${unknown.join(', ')} (known: ${kinds.join(', ')})`);
  if (new Set(e.manipulationTypes).size !== e.manipulationTypes!.length) throw bad('manipulationTypes repeats a kind');
  if (!(e.typeThreshold! > 0 && e.typeThreshold! <= 1)) throw bad('typeThreshold must be in (0, 1]');
}

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

/** The configured localizer's manifest entry (TAMPERTRACE_LOCALIZER_MODEL): its thresholds, crop scale and cue levels, read by every service that interprets its output. */
export async function localizerEntry(cfg: Config): Promise<ManifestEntry> {
  return findModel(await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST), cfg.TAMPERTRACE_LOCALIZER_MODEL);
}
