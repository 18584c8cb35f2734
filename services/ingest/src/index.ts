export * from './ingest-stage.ts';
export * from './results-view.ts';
