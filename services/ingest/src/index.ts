export * from './ingest.ts';
export * from './gateway.ts';
