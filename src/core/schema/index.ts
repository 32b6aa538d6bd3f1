/**
 * Every schema and the check, in one module for those who load them on first use: the client does, so the
 * CLI's --version and --help never load valibot (src/client/client.ts).
 */
export * from './check.ts';
export * from './requests.ts';
export * from './resources.ts';
export * from './watch.ts';
export * from './diagnose.ts';
