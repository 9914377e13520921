// Types of scripts/browser-bundle.mjs, for the TypeScript test that builds the bundle.
import type { BuildOptions, Plugin } from 'esbuild';

export declare const nodeBuiltinsStub: Plugin;
export declare const browserBuildOptions: BuildOptions;
