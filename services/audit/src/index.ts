export * from './consumer.ts';
export * from './records.ts';
export * from './store.ts';
