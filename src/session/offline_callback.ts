// The `user_message.offline` callback of docs/protocol.md §7: after a message was
// stored for an offline user, tell the backend (push notifications, badges).

import type { Callbacks } from "../callbacks.ts";
import type { OfflineHook } from "../router.ts";

/**
 * The router's offline hook: posts the stored packet plus `total` (messages
 * waiting for that user, this one included), one user's posts in the order
 * the messages were stored, so that the last `total` the backend saw is the
 * current one. Fire-and-forget: the message is already stored, so a failing
 * backend loses nothing.
 */
export function offlineCallback(callbacks: Callbacks): OfflineHook {
  return (entry, total) => {
    // Runs inside the router's delivery: throwing here would fail a message
    // that is already stored, so nothing may escape.
    try {
      const packet = JSON.parse(entry.packet) as Record<string, unknown>;
      callbacks.notify(entry.user, "user_message", "offline", { ...packet, total });
    } catch {
      // A packet too deeply nested to parse back: nothing to tell.
    }
  };
}
