// Types of vue.js, the Vue 3 composables of wspub's browser client (README.md beside
// this file).
import type { InjectionKey, MaybeRefOrGetter, Ref, ShallowRef } from "vue";
import type { ChannelMessage, Client, ConnectOptions, State, WspubError } from "./wspub.js";

/** The injection key under which useConnection provides its client to descendants. */
export declare const clientKey: InjectionKey<Client>;

/**
 * Connects and returns the client and a ref of its state. In a component's setup it
 * provides the client to the component's descendants and closes it on unmount; in an
 * effectScope, it closes when the scope is stopped.
 */
export declare function useConnection(url: string | URL, options?: ConnectOptions): {
  client: Client;
  state: Readonly<Ref<State>>;
};

export interface SubscriptionOptions {
  /** The client to subscribe on. Default: the one an ancestor's useConnection provided. */
  client?: Client;
  /** How many messages `messages` keeps (the newest); 0 keeps none. Default: 100. */
  limit?: number;
}

export interface SubscriptionState {
  /** The last message published to the channel, or null before the first. */
  message: Readonly<ShallowRef<ChannelMessage | null>>;
  /** The last `limit` messages, oldest first. */
  messages: Readonly<ShallowRef<readonly ChannelMessage[]>>;
  /** The server acknowledged the subscribe (it stays true across reconnects). */
  ready: Readonly<Ref<boolean>>;
  /** Why the subscribe was refused (code "forbidden", ...), or null. */
  error: Readonly<ShallowRef<WspubError | null>>;
}

/**
 * Subscribes to channel (a change resubscribes; "", null or undefined unsubscribes) and
 * unsubscribes when the component unmounts. Throws without options.client outside the
 * descendants of a component that called useConnection.
 */
export declare function useSubscription(
  channel: MaybeRefOrGetter<string | null | undefined>,
  options?: SubscriptionOptions,
): SubscriptionState;
