export * from './ingest-stage.ts';
export * from './submission.ts';
export * from './results-view.ts';
export * from './listing.ts';
export * from './artifacts.ts';
