// The face-mesh landmarks as the analysis carries them (Face.landmarks): how many there are, which
// index is which feature, and whether a face can be judged. The detection stage writes them, the
// localization, explanation and console read them; this is the one place their layout is named.
import type { Box, Point } from './image.ts';

/** MediaPipe face-mesh points (face_landmark.tflite, 0.10.14). */
export const MESH_POINTS = 468;
/** Iris points per eye (iris_landmark.tflite): centre first, then four on the iris edge. */
export const IRIS_POINTS = 5;
/** Face.landmarks with the iris model's points: 468 mesh points, subject's right iris, left iris. */
export const LANDMARKS_WITH_IRIS = MESH_POINTS + 2 * IRIS_POINTS;
/** Index of the subject's right iris centre in Face.landmarks (left iris: + IRIS_POINTS). */
export const RIGHT_IRIS = MESH_POINTS;
export const LEFT_IRIS = MESH_POINTS + IRIS_POINTS;

/**
 * Mesh indices of named features (MediaPipe's face_mesh_connections.py, Apache-2.0), "right"
 * and "left" from the subject's point of view (the subject's right eye is on the image left of
 * a frontal face). Each contour is in order around the shape.
 */
export const MESH = Object.freeze({
  /** Eye corners: outer and inner. */
  rightEyeOuter: 33,
  rightEyeInner: 133,
  leftEyeOuter: 263,
  leftEyeInner: 362,
  /** Top of the face oval (mid forehead) and the chin's lowest point. */
  foreheadTop: 10,
  chin: 152,
  /** Face-oval points level with the eyes, subject's right and left (near the ear tragion). */
  rightCheekSide: 234,
  leftCheekSide: 454,
  noseTip: 1,
  /** Eye opening, from the outer corner over the upper lid and back under the lower lid. */
  rightEye: [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7],
  leftEye: [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249],
  /** Eyebrow outline: upper edge outwards-in, then the lower edge back. */
  rightEyebrow: [70, 63, 105, 66, 107, 55, 65, 52, 53, 46],
  leftEyebrow: [300, 293, 334, 296, 336, 285, 295, 282, 283, 276],
  /** Lips, outer contour from the right mouth corner over the upper lip, back under the lower. */
  lipsOuter: [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146],
  /** Lips, inner contour (the mouth opening), same order. */
  lipsInner: [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95],
  /** Face oval, clockwise on an upright face from the forehead top. */
  faceOval: [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109],
  /** Nose outline: bridge between the eyes, down the subject's left side, under the nostrils, up the right. */
  nose: [168, 417, 465, 357, 343, 437, 420, 279, 358, 327, 326, 2, 97, 98, 129, 49, 198, 217, 114, 128, 245, 193],
  /** Under the nose from one nostril wing to the other (the mustache zone's top). */
  noseBase: [98, 97, 2, 326, 327],
});

/**
 * The landmark model's face-presence score below which a face is "too degraded to judge":
 * MediaPipe's own cut-off for its face flag (sigmoid 0.5), not tuned here.
 */
export const MIN_LANDMARK_PRESENCE = 0.5;
/**
 * Face box side (image pixels) below which a face is too small to judge: the localizer's crop
 * (1.5x the box, 256 px) would be an upsampling of more than 4x; a floor, not a measured one.
 */
export const MIN_JUDGEABLE_FACE_PX = 40;

/** FaceQuality (analysis.proto) by its value names. */
export type FaceQualityName = 'UNSPECIFIED' | 'JUDGEABLE' | 'TOO_SMALL' | 'TOO_DEGRADED';

/**
 * Whether a face can be judged: too small first (its landmarks would not help), then the
 * landmark model's presence. `presence` undefined: the landmark model did not run, so only the
 * size is assessed (UNSPECIFIED when it passes).
 */
export function faceQuality(box: Box, presence: number | undefined): FaceQualityName {
  if (Math.max(box.width, box.height) < MIN_JUDGEABLE_FACE_PX) return 'TOO_SMALL';
  if (presence === undefined) return 'UNSPECIFIED';
  return presence >= MIN_LANDMARK_PRESENCE ? 'JUDGEABLE' : 'TOO_DEGRADED';
}

/** Whether a landmark list is a full mesh (with or without the iris points). */
export function hasMesh(landmarks: readonly Point[] | undefined): landmarks is readonly Point[] {
  return !!landmarks && landmarks.length >= MESH_POINTS;
}
