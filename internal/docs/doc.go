// Package docs keeps the repository's documentation honest: its tests find every code
// block of every Markdown file and every doc.go, compile each Go block (a complete file
// as it is; a fragment inside a function, with the few names the prose takes for granted
// declared for it) and check that no block's language goes untested. The browser
// snippets (js and html blocks) are executed in Chromium by the e2e tests, which get them
// from the docserver command of this module, so both kinds come from one extractor.
//
// It is a module of its own because the documentation shows the broker adapters and the
// Prometheus metrics, whose dependencies the root module must not have.
package docs
