// The Vite build of e2e/bindings.test.mjs: one page per binding. The test copies this
// directory to a temporary one, writes client/README.md's examples into src/vue/ and
// src/react/, installs the packed @wspub/client and builds.
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [vue()],
  logLevel: "warn",
  build: {
    rolldownOptions: { input: { vue: "vue.html", react: "react.html" } },
  },
});
