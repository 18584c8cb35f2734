export * from './geometry.ts';
export * from './localize.ts';
export * from './metrics.ts';
export * from './model.ts';
export * from './regions.ts';
export * from './stage.ts';

