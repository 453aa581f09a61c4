// The types of the program in vitest-workflows.ts, from its src/env.d.ts (not copied verbatim:
// these are the bindings its code uses, as its wrangler configuration declares them).
export type Env = {
	TEST_WORKFLOW: Workflow;
	TEST_LONG_WORKFLOW: Workflow;
};
export type Params = unknown;
