package wspub

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
)

// dispatch validates one client frame and routes it. It runs on the connection's reader,
// so one connection's messages are handled one at a time, in order.
func (c *Conn) dispatch(b []byte) {
	h := c.hub
	m, perr := decodeClientMessage(b, h.lim)
	if perr != nil {
		c.invalid(perr, m.ID)
		return
	}
	h.log.LogAttrs(c.ctx, slog.LevelDebug, "websocket_message",
		slog.String("conn_id", c.id), slog.String("type", m.Type), slog.String("channel", m.Channel))
	switch m.Type {
	case typeSubscribe, typeUnsubscribe, typePublish:
		if m.Channel == "" {
			c.invalid(&Error{Code: CodeInvalidChannel, Message: `missing "channel"`}, m.ID)
			return
		}
		c.invalidRun = 0
		switch m.Type {
		case typeSubscribe:
			c.clientSubscribe(m)
		case typeUnsubscribe:
			h.unsubscribe(c, m.Channel, m.ID)
		default:
			c.clientPublish(m)
		}
	case typePing:
		c.invalidRun = 0
		_ = c.enqueue(encodeReply(typePong, "", m.ID))
	case typeSubscribed, typeUnsubscribed, typePublished, typePong, typeError:
		c.invalid(&Error{Code: CodeUnknownType, Message: "type " + m.Type + " is sent by the server only"}, m.ID)
	default:
		fn := h.handler(m.Type)
		if fn == nil {
			c.invalid(&Error{Code: CodeUnknownType, Message: "no handler for type " + m.Type}, m.ID)
			return
		}
		c.invalidRun = 0
		if err := h.safely(c, m.Type, func() error { return fn(c.ctx, c, m) }); err != nil {
			c.replyError(c.clientError(m.Type, err, CodeInternal, "internal error"), m.ID)
		}
	}
}

// clientSubscribe subscribes c to a channel the client asked for, if Authorize allows it.
func (c *Conn) clientSubscribe(m ClientMessage) {
	if e := c.authorize(ActionSubscribe, m.Channel); e != nil {
		c.replyError(e, m.ID)
		return
	}
	if err := c.hub.subscribe(c, m.Channel, m.ID); errors.Is(err, ErrTooManySubscriptions) {
		c.replyError(&Error{Code: CodeTooManySubscriptions,
			Message: "a connection may be on at most " + strconv.Itoa(c.hub.opts.MaxSubscriptionsPerConn) + " channels"}, m.ID)
	}
}

// clientPublish publishes a client's message to its channel through Hub.Publish, when
// Options.AllowClientPublish and Authorize allow it, and acknowledges it.
func (c *Conn) clientPublish(m ClientMessage) {
	h := c.hub
	if !h.opts.AllowClientPublish {
		c.replyError(&Error{Code: CodeForbidden, Message: "clients may not publish on this server"}, m.ID)
		return
	}
	if e := c.authorize(ActionPublish, m.Channel); e != nil {
		c.replyError(e, m.ID)
		return
	}
	var data any
	if m.Data != nil {
		data = json.RawMessage(m.Data)
	}
	frame, err := encodeEnvelope(typePublish, m.Channel, data)
	if err == nil {
		err = h.fanout(c.ctx, m.Channel, frame, func() []*Conn { return h.reg.subscribers(m.Channel) })
	}
	switch {
	case errors.Is(err, ErrMessageTooLarge):
		err = &Error{Code: CodeMessageTooLarge, Message: "message of " + strconv.Itoa(len(frame)) +
			" bytes is larger than a subscriber's send queue (" + strconv.Itoa(h.opts.MaxQueueBytes) + " bytes)"}
	case errors.Is(err, ErrBroker):
		err = &Error{Code: CodeInternal, Message: "delivered on this server only: the broker is unavailable"}
	}
	if err != nil {
		c.replyError(c.clientError("publish", err, CodeInternal, "publish failed"), m.ID)
		return
	}
	_ = c.enqueue(encodeReply(typePublished, m.Channel, m.ID))
}

// authorize asks Options.Authorize, if set, whether c may act on channel; it returns the
// error reply for a refusal.
func (c *Conn) authorize(action Action, channel string) *Error {
	fn := c.hub.opts.Authorize
	if fn == nil {
		return nil
	}
	err := c.hub.safely(c, "Authorize", func() error { return fn(c.ctx, c, action, channel) })
	if err == nil {
		return nil
	}
	c.hub.log.LogAttrs(c.ctx, slog.LevelInfo, "websocket_forbidden",
		slog.String("conn_id", c.id), slog.String("user_id", c.userID),
		slog.String("action", action.String()), slog.String("channel", channel), slog.String("error", err.Error()))
	return c.clientError("Authorize", err, CodeForbidden, "not allowed to "+action.String()+" on this channel")
}

// clientError turns an error of application code into the reply a client sees: an *Error
// as it is, anything else as the given code and message, logged, so that internal
// details never reach a client.
func (c *Conn) clientError(in string, err error, code, msg string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if code == CodeInternal {
		c.hub.log.LogAttrs(c.ctx, slog.LevelWarn, "websocket_handler_error",
			slog.String("conn_id", c.id), slog.String("in", in), slog.String("error", err.Error()))
	}
	return &Error{Code: code, Message: msg}
}

// invalid answers a client protocol error and counts it towards MaxInvalidMessages.
func (c *Conn) invalid(e *Error, id string) {
	c.replyError(e, id)
	c.countInvalid()
}

// replyError sends an error reply and counts it.
func (c *Conn) replyError(e *Error, id string) {
	c.hub.stats.invalid.Add(1)
	c.hub.log.LogAttrs(c.ctx, slog.LevelDebug, "websocket_error_reply",
		slog.String("conn_id", c.id), slog.String("code", e.Code), slog.String("message", e.Message))
	_ = c.enqueue(encodeError(e, id))
}
