#!/usr/bin/env node
// Entry point of `npx tampertrace`: the sources are TypeScript, loaded through tsx. Tracing (when
// OTEL_* asks for it) starts before the CLI is imported, so that @grpc/grpc-js and node:http are
// loaded already patched by their OpenTelemetry instrumentations.
import { register } from 'tsx/esm/api';

register();
const args = process.argv.slice(2);
const { startTracing, stopTracing } = await import('@tampertrace/shared/tracing-sdk');
await startTracing(args[0] === 'service' && args[1] ? args[1] : 'tampertrace');
const { main } = await import('../src/cli.ts');
process.exitCode = await main(args);
await stopTracing();
