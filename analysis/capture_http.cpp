// The capture job's HTTP client on libcurl; see capture_http.h.
#include "analysis/capture_http.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "engine/error.h"

namespace moe::analysis {

namespace {

// curl_global_init is not thread-safe: done once, before the first handle.
void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t write_body(char* data, size_t size, size_t n, void* user) {
    static_cast<std::string*>(user)->append(data, size * n);
    return size * n;
}

}  // namespace

HttpClient::HttpClient(const HttpOptions& opt) : opt_(opt) {
    global_init();
    curl_ = curl_easy_init();
    if (!curl_) throw_failure("libcurl", "curl_easy_init failed");
}

HttpClient::~HttpClient() {
    if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResponse HttpClient::perform(const std::string& url, const std::string* body, double timeout_s) {
    CURL* c = static_cast<CURL*>(curl_);
    curl_easy_reset(c);
    HttpResponse r;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // worker threads: no SIGALRM for time-outs
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt_.connect_timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // whatever the server compresses with
    struct curl_slist* headers = nullptr;
    if (body) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    }
    const CURLcode rc = curl_easy_perform(c);
    if (headers) curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        r.status = 0;
        r.error = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
        if (rc == CURLE_OPERATION_TIMEDOUT) r.error = "timed out (" + r.error + ")";
        return r;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    return r;
}

HttpResponse HttpClient::get(const std::string& url, double timeout_s) {
    return perform(url, nullptr, timeout_s);
}

HttpResponse HttpClient::post_json(const std::string& url, const std::string& body, double timeout_s) {
    return perform(url, &body, timeout_s);
}

HttpResponse HttpClient::post_json_retrying(const std::string& url, const std::string& body,
                                            const std::atomic<bool>* stop, int* attempts) {
    HttpResponse r;
    double wait = opt_.backoff_s;
    for (int attempt = 0;; ++attempt) {
        r = post_json(url, body, opt_.timeout_s);
        if (attempts) *attempts = attempt + 1;
        const bool retryable = r.status == 0 || r.status >= 500;
        if (!retryable || attempt >= opt_.retries) return r;
        // Back-off, waking every 50 ms to honour a stop.
        const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait);
        while (std::chrono::steady_clock::now() < until) {
            if (stop && stop->load()) return r;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        wait = std::min(wait * 2, 30.0);
    }
}

}  // namespace moe::analysis
