export * from './consumer.ts';
export * from './records.ts';

