package wspub_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub"
)

func TestClientHandler(t *testing.T) {
	file, err := os.ReadFile("client/wspub.js")
	require.NoError(t, err)
	srv := httptest.NewServer(wspub.ClientHandler())
	t.Cleanup(srv.Close)

	do := func(t *testing.T, method string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+"/wspub.js", nil)
		require.NoError(t, err)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}

	t.Run("GET serves the embedded client", func(t *testing.T) {
		resp, body := do(t, http.MethodGet, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "text/javascript; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		assert.Regexp(t, `^"[0-9a-f]{32}"$`, resp.Header.Get("ETag"))
		assert.Equal(t, string(file), string(body))
	})

	t.Run("HEAD has the headers and no body", func(t *testing.T) {
		resp, body := do(t, http.MethodHead, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "text/javascript; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.NotEmpty(t, resp.Header.Get("ETag"))
		assert.Empty(t, body)
	})

	t.Run("If-None-Match with the ETag is 304", func(t *testing.T) {
		first, _ := do(t, http.MethodGet, nil)
		etag := first.Header.Get("ETag")
		require.NotEmpty(t, etag)
		resp, body := do(t, http.MethodGet, http.Header{"If-None-Match": {etag}})
		assert.Equal(t, http.StatusNotModified, resp.StatusCode)
		assert.Empty(t, body)

		resp, _ = do(t, http.MethodGet, http.Header{"If-None-Match": {`"stale"`}})
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})

	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		t.Run(method+" is 405", func(t *testing.T) {
			resp, _ := do(t, method, nil)
			assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
			assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
		})
	}
}
