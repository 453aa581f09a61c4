/**
 * What the code blocks of README.md and docs/ use without defining it: the Worker's `Env`, the
 * `step`, `ctx` and `input` of the workflow a fragment sits in, the sample workflows the guides
 * share, and the reader's own functions (`reserve`, `charge`, `mail` ...). Only for
 * `scripts/check-docs.mjs`; a block that defines a name itself shadows the one here.
 */
import type {
  CheckpointActor,
  ExecutionActor,
  ExecutionIndex,
  LockActor,
  ScheduleActor,
  Step,
  Workflow,
  WorkflowContext,
} from "baton";

type Order = { orderId: string; items: string[]; amount: number };

declare global {
  /** The bindings the guides assume (README's quick start defines its own). */
  interface Env {
    Executions: DurableObjectNamespace<DocsExecutions>;
    Locks: DurableObjectNamespace<LockActor<Env>>;
    Checkpoints: DurableObjectNamespace<CheckpointActor<Env>>;
    ExecutionIndex: DurableObjectNamespace<ExecutionIndex<Env>>;
    Schedules: DurableObjectNamespace<ScheduleActor<Env>>;
    BATON_TOKEN: string;
  }
  /** An Execution actor with the sample workflows registered. */
  type DocsExecutions = ExecutionActor<Env> & {
    readonly workflows: readonly [
      typeof greet,
      typeof approval,
      typeof orderFlow,
      typeof report,
      typeof makeInvoice,
      typeof packItem,
    ];
  };
  /** The timers of the actor a `this.timers` fragment sits in. */
  type DocsTimers = { expire: { key: string } };

  // Sample workflows the guides refer to.
  const greet: Workflow<"greet", { name: string }, { hello: string; approved: boolean }>;
  const approval: Workflow<"approval", { doc: string }, string>;
  const orderFlow: Workflow<"order", Order, { orderId: string; shipped: boolean }>;
  const report: Workflow<"report", { month: string }, { rows: number }>;
  const makeInvoice: Workflow<"invoice", { orderId: string }, { invoiceId: string }>;
  const packItem: Workflow<"pack-item", { sku: string }, { parcel: string }>;

  // The surroundings of a fragment: a route, or the body of a workflow.
  const env: Env;
  const request: Request;
  const url: URL;
  const token: string;
  const step: Step;
  const ctx: WorkflowContext<Env>;
  const input: { sku: string; customer: string };
  const orderId: string;

  // The reader's own code.
  type Trip = { from: string; to: string; date: string };
  function bookCar(trip: Trip): Promise<{ id: string }>;
  function bookHotel(trip: Trip): Promise<{ id: string }>;
  function bookFlight(trip: Trip): Promise<{ id: string }>;
  function cancelCar(id: string): Promise<void>;
  function cancelHotel(id: string): Promise<void>;
  function reserve(id: string, fence?: number): Promise<{ id: string }>;
  function charge(amount: number, reservationId: string): Promise<{ id: string }>;
  function ship(orderId: string, paymentId: string): Promise<{ tracking: string }>;
  function release(reservation: { id: string } | undefined): Promise<void>;
  function download(url: string): Promise<Uint8Array>;
  function shrink(image: Uint8Array): Promise<Uint8Array>;
  function isDone(jobId: string): Promise<boolean>;
  function mail(text: string): Promise<void>;
  function writeInvoice(options: { fence: number }): Promise<void>;
  function build(fence: number): Promise<string>;
  function sessionOf(request: Request, env: Env): Promise<{ tenant: string } | null>;
}
