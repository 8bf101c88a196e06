// Mounts client/README.md's Vue example (written to src/vue/ by the test).
import { createApp } from "vue";
import App from "./vue/App.vue";

createApp(App).mount("#app");
