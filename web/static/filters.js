// The search page's filter panel opens beside the results on a wide screen; on a narrow one it
// stays folded above them. Without this script it starts folded everywhere and still works.
const panel = document.querySelector("details.filter-panel");
if (panel && window.matchMedia("(min-width: 48em)").matches) panel.open = true;
