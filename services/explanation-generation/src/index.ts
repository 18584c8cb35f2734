export * from './explainer.ts';
export * from './stage.ts';
export * from './metrics.ts';
