// What the composition root (services/tampertrace) wires: the stage, its store and the verdict recorder.
export * from './stage.ts';
export * from './store.ts';
export * from './verdicts.ts';
