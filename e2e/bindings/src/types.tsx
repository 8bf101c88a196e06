// Type-checked by e2e/bindings.test.mjs (tsc against the packed package's .d.ts files,
// found through its exports): the core, both bindings and the minified build, used as
// their READMEs say.
import { createApp, defineComponent, h, ref, type Ref } from "vue";
import { connect, type Client, type State } from "@wspub/client";
import { connect as connectMin } from "@wspub/client/dist/wspub.min.js";
import * as vue from "@wspub/client/vue";
import * as react from "@wspub/client/react";

const c: Client = connect("/ws", { token: () => "t" });
const sub = c.subscribe("task:42", (msg) => { const channel: string = msg.channel; void channel; });
void sub.ready;
const c2: Client = connectMin("/ws");
void c2;

createApp(defineComponent({
  setup() {
    const { client, state } = vue.useConnection("/ws");
    const s: State = state.value;
    const task = ref(42);
    const { message, messages, ready, error } = vue.useSubscription(() => `task:${task.value}`, { client, limit: 10 });
    const named = vue.useSubscription("news", { limit: 0 });
    const r: Ref<string> = ref("news");
    vue.useSubscription(r);
    const channel: string | undefined = message.value?.channel;
    const n: number = messages.value.length;
    const ok: boolean = ready.value;
    const code: string | undefined = error.value?.code;
    void [s, named, channel, n, ok, code];
    return () => h("p", String(ready.value));
  },
}));

export function Panel({ task }: { task: number }) {
  const { message, messages, ready, error } = react.useSubscription(`task:${task}`, { limit: 5 });
  const n: number = messages.length;
  return <p>{ready ? String(message?.data) : error?.code}{n}</p>;
}

export function App() {
  const { client, state } = react.useConnection("/ws", { pingInterval: 0 });
  const s: State = state;
  const direct = react.useSubscription("news", { client });
  void direct;
  return <react.WspubProvider client={client}><p>{s}</p><Panel task={42} /></react.WspubProvider>;
}
