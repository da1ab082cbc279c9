// The Recordings card: players with waveforms and downloads for everyone allowed to see it; rename, merge and
// delete for the owner. Recordings saved, renamed or deleted while the page is open (here or on another page)
// follow without a reload, and "Load more" brings older ones.

import { announce } from "./announce.js";
import { api } from "./api.js";
import { formatDate, formatDuration, localizeTimes } from "./format.js";
import { peaksFrom, Waveform } from "./waveform.js";

export class RecordingList {
  constructor(section) {
    this.section = section;
    this.owner = section.dataset.username;
    this.list = section.querySelector("[data-recording-list]");
    this.empty = section.querySelector("[data-no-recordings]");
    this.template = section.querySelector("#recording-template");
    this.loadMoreButton = section.querySelector("[data-load-more]");
    this.loadMoreError = section.querySelector("[data-load-more-error]");
    this.waveforms = new WeakMap();
    this.list.addEventListener("click", (event) => this.onClick(event));
    this.list.addEventListener("submit", (event) => this.onSubmit(event));
    this.loadMoreButton.addEventListener("click", () => this.loadMore());
    localizeTimes(this.list);
    for (const item of this.items()) {
      const duration = Number(item.querySelector("[data-field=player]").dataset.duration);
      this.waveformOf(item).setPeaks(peaksFrom(item.querySelector("[data-field=waveform]").dataset.peaks), duration);
    }
  }

  items() {
    return [...this.list.querySelectorAll("[data-recording-id]")];
  }

  itemOf(id) {
    return this.list.querySelector(`[data-recording-id="${id}"]`);
  }

  waveformOf(item) {
    if (!this.waveforms.has(item)) {
      const canvas = item.querySelector("[data-field=waveform]");
      this.waveforms.set(item, new Waveform(canvas, item.querySelector("[data-field=player]"), 0));
    }
    return this.waveforms.get(item);
  }

  build(recording) {
    const item = this.template.content.firstElementChild.cloneNode(true);
    item.dataset.recordingId = recording.id;
    this.fill(item, recording);
    return item;
  }

  // A recording saved (or made by a merge) while the page is open goes where its time puts it.
  add(recording, { quietly = false } = {}) {
    if (this.itemOf(recording.id)) return;
    const item = this.build(recording);
    const created = Date.parse(recording.created_at);
    const next = this.items().find((other) => Date.parse(other.querySelector("time").dateTime) < created);
    if (next) this.list.insertBefore(item, next);
    else if (this.loadMoreButton.hidden) this.list.append(item);
    else return; // older than everything shown: "Load more" brings it in its turn
    this.empty.hidden = true;
    if (!quietly) announce(`New recording: ${recording.title}.`);
  }

  // A rename, here or on another page: the item shows what the server now has.
  update(recording) {
    const item = this.itemOf(recording.id);
    if (item) this.fill(item, recording);
  }

  // A deletion, here or on another page (nothing happens if it is already gone).
  forget(id) {
    const item = this.itemOf(id);
    if (!item) return;
    const title = item.querySelector("[data-field=title]").textContent;
    const hadFocus = item.contains(document.activeElement);
    item.remove();
    this.empty.hidden = this.list.children.length > 0;
    if (hadFocus) this.section.querySelector("h2").focus();
    announce(`Recording “${title}” deleted.`);
  }

  // Catches up with the server, e.g. after this page stopped a stream and the socket message may come later.
  async refresh() {
    const { recordings } = await api(`/api/users/${encodeURIComponent(this.owner)}/recordings/`);
    for (const recording of recordings.reverse()) this.add(recording);
  }

  async loadMore() {
    const last = this.items().at(-1);
    const query = last ? `?before=${last.dataset.recordingId}` : "";
    this.loadMoreButton.disabled = true;
    try {
      const page = await api(`/api/users/${encodeURIComponent(this.owner)}/recordings/${query}`);
      for (const recording of page.recordings) {
        if (!this.itemOf(recording.id)) this.list.append(this.build(recording));
      }
      this.loadMoreButton.hidden = !page.more;
      this.loadMoreError.hidden = true;
      announce(`${page.recordings.length} older recording${page.recordings.length === 1 ? "" : "s"} shown.`);
    } catch (failure) {
      this.loadMoreError.textContent = `Older recordings could not be loaded: ${failure.message}`;
      this.loadMoreError.hidden = false;
    } finally {
      this.loadMoreButton.disabled = false;
    }
  }

  onClick(event) {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const item = button.closest("[data-recording-id]");
    const form = item.querySelector("[data-edit-form]");
    if (button.dataset.action === "edit") this.showEditor(item, form, true);
    else if (button.dataset.action === "cancel-edit") this.showEditor(item, form, false);
    else if (button.dataset.action === "delete") this.remove(item);
    else if (button.dataset.action === "merge") this.merge(item);
  }

  showEditor(item, form, open) {
    const editButton = item.querySelector("[data-action=edit]");
    form.hidden = !open;
    editButton.setAttribute("aria-expanded", String(open));
    if (open) form.elements.title.focus();
    else editButton.focus();
  }

  async onSubmit(event) {
    const form = event.target.closest("[data-edit-form]");
    if (!form) return;
    event.preventDefault();
    const item = form.closest("[data-recording-id]");
    const error = form.querySelector("[data-edit-error]");
    try {
      const recording = await api(`/api/recordings/${item.dataset.recordingId}/`, {
        method: "PATCH",
        body: { title: form.elements.title.value, description: form.elements.description.value },
      });
      this.fill(item, recording);
      error.hidden = true;
      this.showEditor(item, form, false);
      announce(`Recording renamed to ${recording.title}.`);
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  }

  async remove(item) {
    const title = item.querySelector("[data-field=title]").textContent;
    if (!window.confirm(`Delete the recording “${title}”? This cannot be undone.`)) return;
    try {
      await api(`/api/recordings/${item.dataset.recordingId}/`, { method: "DELETE" });
    } catch (failure) {
      window.alert(failure.message);
      return;
    }
    this.forget(item.dataset.recordingId);
  }

  async merge(item) {
    const previous = item.nextElementSibling;
    const title = item.querySelector("[data-field=title]").textContent;
    const earlier = previous?.querySelector("[data-field=title]").textContent ?? "the recording before it";
    if (!window.confirm(`Merge “${title}” into “${earlier}” as one recording?`)) return;
    let merged;
    try {
      merged = await api(`/api/recordings/${item.dataset.recordingId}/merge-previous/`, { method: "POST" });
    } catch (failure) {
      window.alert(failure.message);
      return;
    }
    // The socket says the same; whichever comes first does it.
    this.forget(item.dataset.recordingId);
    if (previous?.dataset.recordingId) this.forget(previous.dataset.recordingId);
    this.add(merged, { quietly: true });
    announce(`Merged into one recording: ${merged.title}.`);
  }

  fill(item, recording) {
    const field = (name) => item.querySelector(`[data-field="${name}"]`);
    field("title").textContent = recording.title;
    field("description").textContent = recording.description;
    field("description").hidden = !recording.description;
    field("denoised").hidden = !recording.denoise_enabled;
    field("duration").textContent = formatDuration(recording.duration);
    field("created_at").dateTime = recording.created_at;
    field("created_at").textContent = formatDate(recording.created_at);
    const player = field("player");
    if (player.getAttribute("src") !== recording.url) player.src = recording.url;
    player.dataset.duration = recording.duration;
    player.setAttribute("aria-label", `Play ${recording.title}`);
    item.querySelector("[data-action=edit]")?.setAttribute("aria-label", `Rename ${recording.title}`);
    item.querySelector("[data-action=delete]")?.setAttribute("aria-label", `Delete ${recording.title}`);
    item.querySelector("[data-action=merge]")
      ?.setAttribute("aria-label", `Merge ${recording.title} with the recording before it`);
    field("download").href = `${recording.url}?download=1`;
    field("download-ogg").href = `${recording.url}?format=ogg&download=1`;
    this.waveformOf(item).setPeaks(recording.peaks ?? [], recording.duration);
    const form = item.querySelector("[data-edit-form]");
    if (form) {
      form.elements.title.value = recording.title;
      form.elements.description.value = recording.description;
    }
  }
}
