export * from './ingest-stage.ts';
export * from './gateway.ts';
