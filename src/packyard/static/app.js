// packyard: progressive enhancement only; every page works without this file.
// 1. Loads the metadata part of a public project's page into its placeholder.
// 2. Adds a copy button to the `pip install` line.
// 3. Completes a relative index URL (no `public_url` configured) with this
//    page's own origin, as the address bar shows it.
(function () {
  "use strict";

  function loadDetails(placeholder) {
    var url = placeholder.getAttribute("data-details-url");
    var fallback = placeholder.innerHTML;  // keeps the no-JS link on failure
    fetch(url + "?partial=1", { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        // The fragment is server-rendered with autoescaping and a sanitised
        // README; scripts inserted through innerHTML never run.
        placeholder.outerHTML = html;
      })
      .catch(function () {
        placeholder.innerHTML = fallback;
        var loading = placeholder.querySelector(".loading");
        if (loading) { loading.textContent = "The upstream did not answer in time."; }
      });
  }

  function addCopyButton(code) {
    if (!navigator.clipboard) { return; }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(code.textContent).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      });
    });
    code.insertAdjacentElement("afterend", button);
  }

  function completeIndexUrl(span) {
    var path = span.textContent;
    if (path.charAt(0) === "/") { span.textContent = window.location.origin + path; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".index-url").forEach(completeIndexUrl);
    document.querySelectorAll("[data-details-url]").forEach(loadDetails);
    var install = document.getElementById("install");
    if (install) { addCopyButton(install); }
  });
})();
