// The browser build of mixtape: one ESM file (dist/mixtape.browser.js) for <script type="module">.
// gpu.js is not bundled: the page loads gpu.js's own browser build first
// (node_modules/gpu.js/dist/gpu-browser.min.js), which defines the global GPU that the GPU
// backend uses when there is no Node `require` (src/backends/gpu/device.ts).
//
// The engine imports no node: module; only file IO does (saveSafetensors / loadSafetensors
// in src/nn/safetensors.ts). In the browser build every node: builtin is a stub whose
// functions throw "<module>.<function>: file IO needs Node ...", so the bundle loads in a
// browser and the file functions fail with a clear message when called.
// Shared by scripts/build.mjs and the browser test (test/browser/gpu-browser.test.ts).

import { builtinModules } from 'node:module';

/** True for a name that can be exported as `export const <name>`. */
const identifier = (name) => /^[A-Za-z_$][\w$]*$/.test(name) && !['default', 'constructor'].includes(name);

/** esbuild plugin: `node:x` (and bare Node builtins) resolve to a stub module that throws when used. */
export const nodeBuiltinsStub = {
  name: 'mixtape-node-builtins-stub',
  setup(build) {
    const bare = new Set(builtinModules.filter((m) => !m.startsWith('_')));
    build.onResolve({ filter: /^[a-z_/:]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (!args.path.startsWith('node:') && !bare.has(name)) return undefined;
      return { path: `node:${name}`, namespace: 'mixtape-node-stub' };
    });
    build.onLoad({ filter: /.*/, namespace: 'mixtape-node-stub' }, async (args) => {
      // The real module's export names (this build runs in Node), so named imports resolve.
      let names = [];
      try { names = Object.keys(await import(args.path)).filter(identifier); } catch { /* no such builtin here */ }
      const lines = [
        `const fail = (fn) => function () { throw new Error(fn + ': file IO needs Node (mixtape in a browser has no ${args.path}; ` +
          `saveSafetensors/loadSafetensors need Node, serializeSafetensors/parseSafetensors work on bytes anywhere)'); };`,
        `export default /* @__PURE__ */ new Proxy({}, { get: (_, key) => typeof key === 'string' ? fail(${JSON.stringify(args.path)} + '.' + key) : undefined });`,
        ...names.map((n) => `export const ${n} = /* @__PURE__ */ fail(${JSON.stringify(`${args.path}.${n}`)});`),
      ];
      return { contents: lines.join('\n'), loader: 'js' };
    });
  },
};

/** esbuild options of the browser bundle (the caller adds entryPoints/outfile or outdir). */
export const browserBuildOptions = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
  // gpu.js comes from the page's global GPU (see above); never bundle it or its Node helpers.
  external: ['gpu.js', 'gl', 'webgpu'],
  plugins: [nodeBuiltinsStub],
};
