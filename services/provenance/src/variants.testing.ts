// Re-encodings of one image as they come back on social media: resized, recompressed, converted
// to WebP, cropped, framed, mirrored. Used by the matching test and the provenance bench.
import sharp, { type Sharp } from 'sharp';

export interface Variant {
  name: string;
  bytes: Buffer;
  /** True when the variant is the image mirrored left to right. */
  mirrored: boolean;
}

export async function reencodings(original: Uint8Array): Promise<Variant[]> {
  const img = sharp(original).rotate();
  const { width, height } = await img.clone().metadata().then((m) => ({ width: m.width!, height: m.height! }));
  const jpeg = (s: Sharp, q: number) => s.jpeg({ quality: q }).toBuffer();
  const crop = (f: number, side: 'centre' | 'left-top') => {
    const w = Math.round(width * (1 - f));
    const h = Math.round(height * (1 - f));
    const left = side === 'centre' ? Math.round((width - w) / 2) : 0;
    const top = side === 'centre' ? Math.round((height - h) / 2) : 0;
    return img.clone().extract({ left, top, width: w, height: h });
  };
  const v = async (name: string, bytes: Promise<Buffer>, mirrored = false): Promise<Variant> => ({ name, bytes: await bytes, mirrored });
  return Promise.all([
    v('resize 0.3x, JPEG q75', jpeg(img.clone().resize(Math.round(width * 0.3)), 75)),
    v('resize 0.5x, JPEG q60', jpeg(img.clone().resize(Math.round(width * 0.5)), 60)),
    v('resize 1.5x, JPEG q90', jpeg(img.clone().resize(Math.round(width * 1.5)), 90)),
    v('JPEG q40', jpeg(img.clone(), 40)),
    v('JPEG q95', jpeg(img.clone(), 95)),
    v('WebP q70', img.clone().webp({ quality: 70 }).toBuffer()),
    v('PNG', img.clone().png().toBuffer()),
    v('cropped 10% (5% each side), JPEG q85', jpeg(crop(0.1, 'centre'), 85)),
    v('cropped 6% from the left and top, JPEG q85', jpeg(crop(0.06, 'left-top'), 85)),
    v('white border 8%, JPEG q85', jpeg(img.clone().extend({ top: Math.round(height * 0.08), bottom: Math.round(height * 0.08), left: Math.round(width * 0.08), right: Math.round(width * 0.08), background: '#ffffff' }), 85)),
    v('black letterbox bars, JPEG q85', jpeg(img.clone().extend({ top: Math.round(height * 0.15), bottom: Math.round(height * 0.15), background: '#000000' }), 85)),
    v('mirrored, JPEG q85', jpeg(img.clone().flop(), 85), true),
    v('mirrored, resize 0.6x, WebP q60', img.clone().flop().resize(Math.round(width * 0.6)).webp({ quality: 60 }).toBuffer(), true),
    v('greyscale, JPEG q80', jpeg(img.clone().greyscale(), 80)),
    v('brightness +10%, JPEG q80', jpeg(img.clone().modulate({ brightness: 1.1 }), 80)),
  ]);
}
