// Types of react.js, the React hooks of wspub's browser client (README.md beside this
// file).
import type { Context, ReactNode } from "react";
import type { ChannelMessage, Client, ConnectOptions, State, WspubError } from "./wspub.js";

/** The context WspubProvider fills; useSubscription reads it. */
export declare const ClientContext: Context<Client | null>;

/** Makes client the one of every useSubscription below it. */
export declare function WspubProvider(props: { client: Client | null; children?: ReactNode }): ReactNode;

/**
 * Connects when the component mounts, closes on unmount (and reconnects when url
 * changes). client is null until the connection is made (after the first render).
 * options are read when the connection is made.
 */
export declare function useConnection(url: string | URL, options?: ConnectOptions): {
  client: Client | null;
  state: State;
};

export interface SubscriptionOptions {
  /** The client to subscribe on. Default: the nearest WspubProvider's. */
  client?: Client | null;
  /** How many messages `messages` keeps (the newest); 0 keeps none. Default: 100. */
  limit?: number;
}

export interface SubscriptionState {
  /** The last message published to the channel, or null before the first. */
  message: ChannelMessage | null;
  /** The last `limit` messages, oldest first. */
  messages: readonly ChannelMessage[];
  /** The server acknowledged the subscribe (it stays true across reconnects). */
  ready: boolean;
  /** Why the subscribe was refused (code "forbidden", ...), or null. */
  error: WspubError | null;
}

/**
 * Subscribes to channel while the component is mounted ("", null or undefined, or no
 * client yet: nothing); a change of channel or client resubscribes.
 */
export declare function useSubscription(
  channel: string | null | undefined,
  options?: SubscriptionOptions,
): SubscriptionState;
