#ifndef REGWATCH_CCURL_H
#define REGWATCH_CCURL_H
#include <curl/curl.h>

/* libcurl's setopt/getinfo are variadic and cannot be called from Swift: these typed pass-throughs can. */
typedef size_t (*ccurl_data_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);

CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_easy_setopt_off(CURL *handle, CURLoption option, curl_off_t value);
CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_easy_setopt_callback(CURL *handle, CURLoption option, ccurl_data_callback callback);
/* CURLOPT_XFERINFOFUNCTION: called about once a second even while a stream is idle; non-zero aborts. */
typedef int (*ccurl_xferinfo_callback)(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);
CURLcode ccurl_easy_setopt_xferinfo(CURL *handle, ccurl_xferinfo_callback callback);
CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode ccurl_easy_getinfo_off(CURL *handle, CURLINFO info, curl_off_t *value);
CURLcode ccurl_easy_getinfo_string(CURL *handle, CURLINFO info, const char **value);
CURLcode ccurl_easy_getinfo_certinfo(CURL *handle, struct curl_certinfo **value);
CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);
/* curl_version_info(CURLVERSION_NOW) with the macro resolved on the C side. */
const curl_version_info_data *ccurl_version_info(void);
/* glibc's malloc_trim (malloc.h is not in Swift's Glibc module): returns freed heap memory to the system. */
int ccurl_malloc_trim(void);
/* mallopt(M_ARENA_MAX, n): fewer per-thread heaps, so a small daemon's memory is not spread (and
   fragmented) over one 64 MiB arena per thread that ever allocated. */
int ccurl_limit_malloc_arenas(int n);
/* mallopt(M_TRIM_THRESHOLD, bytes): free memory at the top of the heap beyond this goes back to the system. */
int ccurl_set_malloc_trim_threshold(int bytes);
#endif
