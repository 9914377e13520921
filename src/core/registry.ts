// The backend registry: backends are registered by name (src/backends/index.ts, one line
// each) and started by the engine on setBackend(name, options). The tensor layer knows
// only this file, never a concrete backend — as tfjs's registerBackend keeps its core
// ignorant of its backends.
//
// A backend adds its options to setBackend's types by declaration merging:
//   declare module '../../core/registry.js' { interface BackendOptionsByName { gpu: GpuOptions } }

import type { Backend } from './backend.js';

/** setBackend's options per registered backend name (extended by each backend). */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface BackendOptionsByName {}

/** The names of the built-in backends ('cpu', 'gpu'). */
export type BackendName = keyof BackendOptionsByName & string;

/** The options setBackend(name, options) takes for a backend name. */
export type BackendOptionsOf<N extends string> = N extends BackendName ? BackendOptionsByName[N] : Record<string, unknown>;

export interface BackendRegistration<O> {
  /** Starts a backend; called once per instance key (an instance lives as long as the process). */
  create(options: O): Backend;
  /**
   * Which started instance options select (default: one per name). The gpu backend keeps
   * one per gpu.js mode, so switching back finds its tensors alive.
   */
  instanceKey?(options: O): string;
  /**
   * Applies options to an instance already started, when setBackend names it again (the
   * cpu's thread count). Without it, options matter only when the instance starts.
   */
  configure?(backend: Backend, options: O): void;
  /**
   * The option names this backend takes. When given, setBackend rejects any other name (a
   * misspelt `{ thread: 2 }` would otherwise start the backend with its defaults, silently).
   */
  options?: readonly string[];
}

const registrations = new Map<string, BackendRegistration<never>>();

/** Registers (or replaces) a backend under a name that setBackend accepts. */
export function registerBackend<N extends string>(name: N, registration: BackendRegistration<BackendOptionsOf<N>>): void {
  if (typeof name !== 'string' || name.length === 0) throw new Error(`registerBackend: name must be a non-empty string, got ${String(name)}`);
  registrations.set(name, registration as BackendRegistration<never>);
}

/** Removes a registration (for tests that register a throwaway backend). Started instances stay with the engine. */
export function unregisterBackend(name: string): boolean {
  return registrations.delete(name);
}

/** The registered backend names, in registration order. */
export function registeredBackends(): string[] {
  return [...registrations.keys()];
}

/**
 * Internal (the engine): rejects options that are not an object, or that name something the
 * registration does not take (when it lists its options).
 */
export function checkBackendOptions(name: string, registration: { readonly options?: readonly string[] }, options: unknown, op: string): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new Error(`${op}('${name}', options): options must be an object, got ${Array.isArray(options) ? 'an array' : String(options)}`);
  }
  const known = registration.options;
  if (known === undefined) return;
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new Error(`${op}('${name}', { ${key} }): unknown option '${key}' (the ${name} backend takes ${known.length ? known.map((k) => `'${k}'`).join(', ') : 'no options'})`);
    }
  }
}

/** Internal (the engine): the registration of a name, or an error listing the registered ones. */
export function registrationOf(name: string, op: string): BackendRegistration<Record<string, unknown>> {
  const r = registrations.get(name);
  if (!r) {
    const known = registeredBackends();
    throw new Error(`${op}: unknown backend '${String(name)}' (registered: ${known.length ? known.map((k) => `'${k}'`).join(', ') : 'none — import mixtape\'s index, which registers cpu and gpu'})`);
  }
  return r as BackendRegistration<Record<string, unknown>>;
}
