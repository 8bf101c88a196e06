// Vue 3 composables over wspub.js: a connection that closes when its component unmounts,
// and subscriptions whose state is reactive and that end when theirs does. Vue is a peer
// dependency, never bundled: this module imports "vue" as the app has it.
import { getCurrentInstance, inject, onScopeDispose, provide, ref, shallowRef, toValue, watch } from "vue";
import { connect } from "./wspub.js";

/** The injection key under which useConnection provides its client to descendants. */
export const clientKey = Symbol("wspub client");

/**
 * Connects (connect(url, options)) and returns {client, state}: state is a ref of the
 * client's state. Called in a component's setup, it provides the client to the
 * component's descendants (their useSubscription finds it) and closes it when the
 * component unmounts; in an effectScope, it closes when the scope is stopped.
 */
export function useConnection(url, options) {
  const client = connect(url, options);
  const state = ref(client.state);
  const off = client.onState((s) => { state.value = s; });
  if (getCurrentInstance()) provide(clientKey, client);
  onScopeDispose(() => {
    off();
    client.close();
  });
  return { client, state };
}

/**
 * Subscribes to channel (a string, a ref or a getter; a change resubscribes, an empty
 * value unsubscribes) on options.client, or on the client an ancestor's useConnection
 * provided, and returns refs: message (the last one, or null), messages (the last
 * options.limit ones, default 100, oldest first), ready (the server acknowledged the
 * subscribe) and error (the WspubError of a refusal, or null). It unsubscribes when the
 * component unmounts (or the effect scope is stopped).
 */
export function useSubscription(channel, options = {}) {
  const client = options.client ?? inject(clientKey, null);
  if (!client) throw new Error("wspub: useSubscription needs options.client or useConnection in an ancestor component");
  const limit = options.limit ?? 100;
  const message = shallowRef(null);
  const messages = shallowRef([]);
  const ready = ref(false);
  const error = shallowRef(null);
  watch(() => toValue(channel), (name, _, onCleanup) => {
    message.value = null;
    messages.value = [];
    ready.value = false;
    error.value = null;
    if (!name) return;
    let live = true;
    const sub = client.subscribe(name, (msg) => {
      message.value = msg;
      messages.value = limit > 0 ? [...messages.value, msg].slice(-limit) : [];
    });
    sub.ready.then(
      () => { if (live) ready.value = true; },
      (err) => { if (live) error.value = err; },
    );
    onCleanup(() => {
      live = false;
      sub.unsubscribe();
    });
  }, { immediate: true });
  return { message, messages, ready, error };
}
