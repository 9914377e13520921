// Routing counts that are counted when first read. With device dispatch the routing stays on
// the device, and counting examples per expert is a readback that a training step should not
// pay unless someone asks. The counts are getters on these classes, not own properties, so
// tidy (which walks own properties to find a result's tensors) never triggers them, and a
// caller tells counts already on the host (an own property) from counts that cost a readback
// (none) by Object.getOwnPropertyDescriptor(stats, 'expertCounts').

/** `expertCounts`, from `count` on first read. */
export class ExpertCountsOnRead {
  readonly #count: () => number[];
  #counts: number[] | undefined;
  constructor(count: () => number[]) { this.#count = count; }
  get expertCounts(): number[] { return (this.#counts ??= this.#count()); }
}

/** `groupCounts` and `expertCounts` (the hierarchical MoE), each from its function on first read. */
export class GroupAndExpertCountsOnRead extends ExpertCountsOnRead {
  readonly #count: () => number[];
  #counts: number[] | undefined;
  constructor(countGroups: () => number[], countExperts: () => number[]) {
    super(countExperts);
    this.#count = countGroups;
  }
  get groupCounts(): number[] { return (this.#counts ??= this.#count()); }
}
