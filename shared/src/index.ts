// The project's shared library: contract types, bus and store interfaces, config, errors.
export * from './bus.ts';
export * from './config.ts';
export * from './errors.ts';
export * from './events.ts';
export * from './ids.ts';
export * from './image.ts';
export * from './log.ts';
export * from './object-store.ts';
export * from './stage.ts';
export * from './topics.ts';
export * from './manifest.ts';
export * from './originals.ts';
export * from './service.ts';
export * from './kafka-bus.ts';
export * from './s3-object-store.ts';
export * from './sql.ts';
export * from './grpc.ts';
