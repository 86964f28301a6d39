// The agent's two C libraries doing the agent's kind of work, and nothing else: HTTP(S) GETs through
// libcurl and a CURVE DEALER socket through libzmq. Built by agent-footprint.sh for the RSS floor.
#include <curl/curl.h>
#include <zmq.h>

static size_t discard(char *p, size_t size, size_t n, void *user) { (void)p; (void)user; return size * n; }

/// The HTTP status of a GET, or minus the curl error.
long floor_get(const char *url, const char *ca) {
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? status : -(long)rc;
}

/// A DEALER with CURVE keys connecting to `endpoint` (nobody needs to answer).
void floor_dealer(const char *endpoint) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    char pub[41], sec[41], serverPub[41], serverSec[41];
    zmq_curve_keypair(pub, sec);
    zmq_curve_keypair(serverPub, serverSec);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, serverPub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    zmq_connect(s, endpoint);
    zmq_send(s, "x", 1, ZMQ_DONTWAIT);
}
