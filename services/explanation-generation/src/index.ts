export * from './explainer.ts';
export * from './stage.ts';
