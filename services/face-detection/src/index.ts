export * from './blazeface.ts';
export * from './stage.ts';
