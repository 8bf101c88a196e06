// React hooks over wspub.js: a connection that closes when its component unmounts, and
// subscriptions whose state is React state and that end when theirs does. React is a
// peer dependency, never bundled; the module has no JSX, so it needs no build step.
import { createContext, createElement, useContext, useEffect, useRef, useState } from "react";
import { connect } from "./wspub.js";

/** The context WspubProvider fills; useSubscription reads it. */
export const ClientContext = createContext(null);

/** Makes client (useConnection's) the one of every useSubscription below it. */
export function WspubProvider({ client, children }) {
  return createElement(ClientContext.Provider, { value: client }, children);
}

const NOT_CONNECTED = { client: null, state: "connecting" };

/**
 * Connects to url when the component mounts and closes the client when it unmounts (or
 * when url changes, which connects anew). Returns {client, state}: client is null until
 * the effect ran (the first render), state the client's state. options are read when
 * the connection is made.
 *
 * StrictMode mounts, unmounts and mounts again at once: the connection is made in a
 * microtask after the effect, so that the first, discarded mount never opens a socket.
 */
export function useConnection(url, options) {
  const [conn, setConn] = useState(NOT_CONNECTED);
  const opts = useRef(options);
  useEffect(() => { opts.current = options; });
  const key = String(url);
  useEffect(() => {
    let client = null, off = null, live = true;
    queueMicrotask(() => {
      if (!live) return;
      client = connect(key, opts.current);
      off = client.onState((state) => setConn({ client, state }));
      setConn({ client, state: client.state });
    });
    return () => {
      live = false;
      off?.();
      client?.close();
      setConn(NOT_CONNECTED);
    };
  }, [key]);
  return conn;
}

const EMPTY = { message: null, messages: [], ready: false, error: null };

/**
 * Subscribes to channel on options.client, or on the client of the nearest
 * WspubProvider, and returns {message, messages, ready, error}: the last message (or
 * null), the last options.limit ones (default 100, oldest first), whether the server
 * acknowledged the subscribe, and the WspubError of a refusal (or null). A change of
 * channel or client resubscribes; an empty channel or a null client subscribes to
 * nothing. It unsubscribes when the component unmounts.
 */
export function useSubscription(channel, options = {}) {
  const fromContext = useContext(ClientContext);
  const client = options.client ?? fromContext;
  const limit = options.limit ?? 100;
  const [sub, setSub] = useState(EMPTY);
  useEffect(() => {
    setSub(EMPTY);
    if (!client || !channel) return undefined;
    let live = true;
    const s = client.subscribe(channel, (msg) => {
      if (live) setSub((prev) => ({ ...prev, message: msg, messages: limit > 0 ? [...prev.messages, msg].slice(-limit) : [] }));
    });
    s.ready.then(
      () => { if (live) setSub((prev) => ({ ...prev, ready: true })); },
      (error) => { if (live) setSub((prev) => ({ ...prev, error })); },
    );
    return () => {
      live = false;
      s.unsubscribe();
    };
  }, [client, channel, limit]);
  return sub;
}
