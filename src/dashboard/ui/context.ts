/** What every view of the page gets: the API client, the session, navigation. */
import { ApiError, type Client } from "./client.ts";
import { type Child, h } from "./dom.ts";
import type { Session } from "./types.ts";

export interface Context {
  client: Client;
  session: Session;
  /** The dashboard's mount path, e.g. `/dashboard`. */
  base: string;
  /** Goes to a page of the dashboard (`/executions/…`), without reloading. */
  navigate(path: string): void;
  /** The API said 401: show the sign-in view. */
  unauthorized(): void;
}

/** A page of the dashboard: its element, and what to stop when it is left. */
export interface View {
  el: HTMLElement;
  dispose(): void;
}

/** A link to a page of the dashboard (navigates without reloading; a real href to share). */
export function link(ctx: Context, path: string, ...children: Child[]): HTMLAnchorElement {
  return h(
    "a",
    {
      attrs: { href: `${ctx.base}${path}` },
      on: {
        click: (event) => {
          if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
          event.preventDefault();
          ctx.navigate(path);
        },
      },
    },
    ...children,
  );
}

/** The path of execution `id`'s page. */
export const executionPath = (id: string) => `/executions/${encodeURIComponent(id)}`;

/** An error as the page shows it: its code, then its message. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) return `${error.code}: ${error.message}`;
  return `ERROR: ${(error as Error)?.message ?? String(error)}`;
}

/**
 * Runs `load`; a 401 shows the sign-in view, another error is shown in `into` and returned as
 * undefined.
 */
export async function guarded<T>(
  ctx: Context,
  into: HTMLElement | null,
  load: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await load();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      ctx.unauthorized();
      return undefined;
    }
    if (into) {
      into.replaceChildren(h("p", { class: "error", attrs: { role: "alert" } }, errorText(error)));
    }
    return undefined;
  }
}
