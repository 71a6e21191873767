/*
 * trellis_native: the few system calls Node cannot make.
 *
 * - socketInNetns(path|null, domain, type, protocol) -> fd
 *     A socket belongs to the network namespace its creating thread was in, so we
 *     enter the target namespace on the calling thread, create the socket and go back.
 * - netlinkTransact(fd, request) -> Promise<Buffer>  (non-dump requests must carry NLM_F_ACK)
 *     Sends one netlink request and collects every reply datagram up to the final
 *     NLMSG_DONE / NLMSG_ERROR for its sequence number, on the libuv thread pool so
 *     slow kernel operations (veth deletion waits for an RCU grace period) never
 *     block the event loop. The caller serialises requests per socket.
 * - listenInNetns(path, "udp"|"tcp", ip, port) -> fd
 *     A UDP or listening TCP socket bound to ip:port inside the netns at path (the embedded
 *     DNS listeners at 127.0.0.11:53). Node adopts the fd (dgram bind({fd}), net listen({fd})).
 * - closeFd(fd)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <node_api.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#define RECV_BUF_SIZE (256 * 1024)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  char codebuf[32];
  snprintf(codebuf, sizeof codebuf, "E%d", err);
  napi_create_string_utf8(env, codebuf, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, message, &error);
  napi_value errnoValue;
  napi_create_int32(env, err, &errnoValue);
  napi_set_named_property(env, error, "errno", errnoValue);
  napi_throw(env, error);
  return NULL;
}

static napi_value socket_in_netns(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "socketInNetns(path|null, domain, type, protocol)");
    return NULL;
  }
  napi_valuetype pathType;
  napi_typeof(env, argv[0], &pathType);
  char path[4096] = {0};
  if (pathType == napi_string) {
    size_t len = 0;
    napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len);
  }
  int32_t domain, type, protocol;
  napi_get_value_int32(env, argv[1], &domain);
  napi_get_value_int32(env, argv[2], &type);
  napi_get_value_int32(env, argv[3], &protocol);

  int target = -1, home = -1;
  if (path[0]) {
    target = open(path, O_RDONLY | O_CLOEXEC);
    if (target < 0) return throw_errno(env, path, errno);
    home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) {
      int e = errno;
      close(target);
      return throw_errno(env, "open /proc/thread-self/ns/net", e);
    }
    if (setns(target, CLONE_NEWNET) < 0) {
      int e = errno;
      close(target);
      close(home);
      return throw_errno(env, "setns", e);
    }
  }
  int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
  int socketErr = errno;
  if (home >= 0) {
    if (setns(home, CLONE_NEWNET) < 0) {
      /* Staying in the wrong namespace would silently corrupt every later operation. */
      abort();
    }
    close(home);
    close(target);
  }
  if (fd < 0) return throw_errno(env, "socket", socketErr);
  if (domain == AF_NETLINK) {
    int one = 1;
    int size = 1024 * 1024;
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    /* Every request carries NLM_F_ACK so a reply always comes; the timeout only guarantees that a
     * kernel or caller bug can never pin a thread-pool thread forever (recv fails with EAGAIN). */
    struct timeval timeout = {.tv_sec = 30, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, "bind netlink", e);
    }
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* Enters the netns at path on this thread; *home gets a handle on the namespace to come back to. */
static int enter_netns(const char *path, int *home) {
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) return -1;
  *home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*home < 0) {
    int e = errno;
    close(target);
    errno = e;
    return -1;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(*home);
    *home = -1;
    errno = e;
    return -1;
  }
  close(target);
  return 0;
}

static void leave_netns(int home) {
  /* Staying in the wrong namespace would silently corrupt every later operation. */
  if (setns(home, CLONE_NEWNET) < 0) abort();
  close(home);
}

/* socket + bind (+ listen) in the current namespace; returns the fd or -1 with *what set. */
static int bound_socket(int tcp, const char *ip, int port, const char **what) {
  struct sockaddr_storage addr;
  memset(&addr, 0, sizeof addr);
  socklen_t len;
  int family;
  struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
  if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
    family = v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
    family = v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    len = sizeof *v6;
  } else {
    *what = "listenInNetns: bad address";
    errno = EINVAL;
    return -1;
  }
  int fd = socket(family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *what = "socket";
    return -1;
  }
  int one = 1;
  /* A restarted daemon must rebind at once even with connections of the old one in TIME_WAIT. */
  if (tcp) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&addr, len) < 0) {
    *what = "bind";
  } else if (tcp && listen(fd, 128) < 0) {
    *what = "listen";
  } else {
    return fd;
  }
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

static napi_value listen_in_netns(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[4096] = {0}, proto[8] = {0}, ip[64] = {0};
  int32_t port = -1;
  size_t len = 0;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], proto, sizeof proto, &len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], ip, sizeof ip, &len) != napi_ok ||
      napi_get_value_int32(env, argv[3], &port) != napi_ok || port < 0 || port > 65535 ||
      (strcmp(proto, "udp") != 0 && strcmp(proto, "tcp") != 0) || path[0] == 0) {
    napi_throw_type_error(env, NULL, "listenInNetns(path, \"udp\"|\"tcp\", ip, port)");
    return NULL;
  }
  int home = -1;
  if (enter_netns(path, &home) < 0) return throw_errno(env, path, errno);
  const char *what = NULL;
  int fd = bound_socket(strcmp(proto, "tcp") == 0, ip, port, &what);
  int err = errno;
  leave_netns(home);
  if (fd < 0) return throw_errno(env, what, err);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref requestRef;
  int fd;
  const uint8_t *request;
  size_t requestLen;
  uint8_t *reply;
  size_t replyLen;
  size_t replyCap;
  int err;
  const char *errWhat;
} transact_t;

static int append_reply(transact_t *t, const uint8_t *data, size_t len) {
  if (t->replyLen + len > t->replyCap) {
    size_t cap = t->replyCap ? t->replyCap * 2 : 64 * 1024;
    while (cap < t->replyLen + len) cap *= 2;
    uint8_t *grown = realloc(t->reply, cap);
    if (!grown) return -1;
    t->reply = grown;
    t->replyCap = cap;
  }
  memcpy(t->reply + t->replyLen, data, len);
  t->replyLen += len;
  return 0;
}

static void transact_execute(napi_env env, void *data) {
  (void)env;
  transact_t *t = data;
  if (t->requestLen < sizeof(struct nlmsghdr)) {
    t->err = EINVAL;
    t->errWhat = "netlink request too short";
    return;
  }
  const struct nlmsghdr *req = (const struct nlmsghdr *)t->request;
  uint32_t seq = req->nlmsg_seq;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t sent;
  do {
    sent = sendto(t->fd, t->request, t->requestLen, 0, (struct sockaddr *)&kernel, sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    t->err = errno;
    t->errWhat = "netlink send";
    return;
  }
  uint8_t *buf = malloc(RECV_BUF_SIZE);
  if (!buf) {
    t->err = ENOMEM;
    t->errWhat = "malloc";
    return;
  }
  for (;;) {
    ssize_t n = recv(t->fd, buf, RECV_BUF_SIZE, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      t->err = errno;
      t->errWhat = "netlink recv";
      break;
    }
    int finished = 0;
    int keep = 0;
    /* NLMSG_NEXT consumes its length argument: walk a copy so n stays the datagram size. */
    int left = (int)n;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq) continue; /* a stale reply to an earlier, abandoned request */
      keep = 1;
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) finished = 1;
    }
    if (keep && append_reply(t, buf, (size_t)n) < 0) {
      t->err = ENOMEM;
      t->errWhat = "realloc";
      break;
    }
    if (finished) break;
  }
  free(buf);
}

static void transact_complete(napi_env env, napi_status status, void *data) {
  (void)status;
  transact_t *t = data;
  if (t->err) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", t->errWhat, strerror(t->err));
    napi_value message, error, errnoValue;
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_create_int32(env, t->err, &errnoValue);
    napi_set_named_property(env, error, "errno", errnoValue);
    napi_reject_deferred(env, t->deferred, error);
  } else {
    napi_value out;
    void *outData;
    napi_create_buffer_copy(env, t->replyLen, t->reply ? (void *)t->reply : (void *)"", &outData, &out);
    napi_resolve_deferred(env, t->deferred, out);
  }
  napi_delete_reference(env, t->requestRef);
  napi_delete_async_work(env, t->work);
  free(t->reply);
  free(t);
}

static napi_value netlink_transact(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool isBuffer = false;
  if (argc < 2 || napi_is_buffer(env, argv[1], &isBuffer) != napi_ok || !isBuffer) {
    napi_throw_type_error(env, NULL, "netlinkTransact(fd, Buffer)");
    return NULL;
  }
  transact_t *t = calloc(1, sizeof *t);
  if (!t) return throw_errno(env, "calloc", ENOMEM);
  napi_get_value_int32(env, argv[0], &t->fd);
  void *reqData;
  napi_get_buffer_info(env, argv[1], &reqData, &t->requestLen);
  t->request = reqData;
  napi_create_reference(env, argv[1], 1, &t->requestRef);
  napi_value promise, name;
  napi_create_promise(env, &t->deferred, &promise);
  napi_create_string_utf8(env, "trellis.netlinkTransact", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, transact_execute, transact_complete, t, &t->work);
  napi_queue_async_work(env, t->work);
  return promise;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  napi_get_value_int32(env, argv[0], &fd);
  if (fd >= 0) close(fd);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"socketInNetns", NULL, socket_in_netns, NULL, NULL, NULL, napi_default, NULL},
      {"netlinkTransact", NULL, netlink_transact, NULL, NULL, NULL, napi_default, NULL},
      {"listenInNetns", NULL, listen_in_netns, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
