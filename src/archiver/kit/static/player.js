/* Captions for the video of this page. They come from captions.js, loaded with a <script>
   tag: browsers refuse to load <track> files from file:// pages, so the tracks are built here
   from the cues. */
(function () {
  "use strict";
  var video = document.querySelector("video");
  var tracks = window.ARCHIVER_CAPTIONS || [];
  if (!video || !window.VTTCue) { return; }
  var lang = document.documentElement.lang;
  tracks.forEach(function (caption, index) {
    var track = video.addTextTrack("subtitles", caption.label, caption.language);
    caption.cues.forEach(function (cue) {
      track.addCue(new VTTCue(cue[0], cue[1], cue[2]));
    });
    // Shown by default in the page's language, or the first one; the player's menu (⋮ then
    // "Sous-titres" in Chromium, a button in Firefox) changes it.
    var preferred = tracks.some(function (c) { return c.language === lang; }) ?
      caption.language === lang : index === 0;
    track.mode = preferred ? "showing" : "hidden";
  });
}());
