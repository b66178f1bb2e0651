/**
 * The chat example's pages' WebSocket: connects to `url` (a string, or a
 * function that gives it at each attempt), shows its state in
 * the `status` element (`data-state`: connecting, open, closed) and, once
 * closed, reconnects with backoff: 0.5 s doubling to 10 s, each delay drawn
 * between half and all of it (jitter). `onMessage(message)` gets each
 * message parsed as JSON, `onClose(event)` runs when the socket closes (the
 * `CloseEvent`). `stop` maps the close codes after which it does not
 * reconnect to what the status then says. The page calls `opened()` once
 * the server's first message says the connection is good, and `restart()`
 * to connect again at once to a changed `url`, as a new connection (without
 * `onClose`), when the socket is open (otherwise the next attempt takes the
 * new one); `socket` is the current WebSocket.
 */
function reconnecting (url, status, { onMessage, onClose = () => {}, stop = {} }) {
  let attempt = 0
  // Why the page is not connected, kept through the failed attempts that follow.
  let reason = ''
  const connection = {
    socket: null,
    opened () {
      attempt = 0
      reason = ''
      setStatus('open', 'connected')
    },
    restart () {
      const socket = connection.socket
      if (socket.readyState !== WebSocket.OPEN) return
      socket.onmessage = socket.onclose = null
      socket.close(1000, 'reconnecting')
      connect()
    }
  }

  function setStatus (state, message) {
    status.dataset.state = state
    status.textContent = message
  }

  function connect () {
    setStatus('connecting', reason === '' ? 'connecting…' : `${reason}, reconnecting…`)
    const socket = new WebSocket(typeof url === 'function' ? url() : url)
    connection.socket = socket
    socket.onmessage = (event) => onMessage(JSON.parse(event.data))
    socket.onclose = (event) => {
      onClose(event)
      if (event.code in stop) return setStatus('closed', stop[event.code])
      if (status.dataset.state === 'open') {
        reason = event.code === 1001 ? 'server going away' : event.code === 1012 ? 'messages lost, resuming' : `connection lost (${event.code})`
      } else if (reason === '') {
        reason = 'server unreachable'
      }
      retry()
    }
  }

  function retry () {
    const ceiling = Math.min(10_000, 500 * 2 ** attempt++)
    const at = Date.now() + ceiling * (0.5 + Math.random() / 2)
    const tick = () => {
      const left = at - Date.now()
      if (left <= 0) return connect()
      setStatus('closed', `${reason}, reconnecting in ${Math.ceil(left / 1000)} s…`)
      setTimeout(tick, Math.min(left, 250))
    }
    tick()
  }

  connect()
  return connection
}
