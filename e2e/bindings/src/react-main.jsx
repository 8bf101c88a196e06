// Mounts client/README.md's React example (written to src/react/ by the test) in
// StrictMode: the test builds with NODE_ENV=development, so every effect runs, is
// cleaned up and runs again, as in a developer's browser.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import App from "./react/App.jsx";

createRoot(document.getElementById("root")).render(<StrictMode><App /></StrictMode>);
