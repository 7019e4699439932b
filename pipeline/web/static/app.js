// The pages' own script: the call player jumps to a cue. Everything else is htmx or plain HTML.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-seek]");
  if (!button) return;
  var player = document.getElementById(button.getAttribute("data-player") || "player");
  if (!player) return;
  event.preventDefault();
  player.currentTime = parseFloat(button.getAttribute("data-seek"));
  var playing = player.play();
  if (playing && playing.catch) playing.catch(function () {});  // autoplay may be refused; the jump stays
});

// A link such as /calls/7#t=52.3 (a quote's play button on the account page) opens the call there.
document.addEventListener("DOMContentLoaded", function () {
  var m = /^#t=([0-9.]+)$/.exec(window.location.hash);
  var player = document.getElementById("player");
  if (!m || !player) return;
  var seek = function () { player.currentTime = parseFloat(m[1]); };
  if (player.readyState >= 1) seek(); else player.addEventListener("loadedmetadata", seek, { once: true });
});
