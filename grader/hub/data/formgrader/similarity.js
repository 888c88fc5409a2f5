// aicourse: a "Similarity" column in nbgrader's Manage Submissions page, from the results of
// `grader similarity` (<course>/similarity/<assignment>.json). Appended by the course's formgrader
// service to nbgrader's own manage_submissions.js (grader/hub/services/formgrader_similarity.py),
// so it runs after that file's definitions and before the page's load event: it wraps them.
(function () {
    var originalInsertRow = insertRow;
    var originalLoadSubmissions = loadSubmissions;
    var originalRender = SubmissionUI.prototype.render;
    var similarity = null;  // the service's answer, once fetched (null: no results)

    var label = function (kind, text, title) {
        return $("<span/>").addClass("label label-" + kind).text(text).attr("title", title || "");
    };

    var fill = function ($cell, student) {
        $cell.empty();
        if (similarity === null) {
            $cell.attr("data-order", -1).text("-")
                .attr("title", "No results: run `grader similarity " + assignment_id + "`");
            return;
        }
        var entry = similarity.students[student];
        if (entry === undefined) {
            $cell.attr("data-order", -1).text("not compared")
                .attr("title", "Submitted after `grader similarity` ran (" + similarity.generated + ")");
            return;
        }
        $cell.attr("data-order", entry.closest).attr("title", similarity.explanation);
        if (entry.unreadable.length > 0) {
            $cell.append(label("danger", "unreadable", "Not a notebook: " + entry.unreadable.join(", "))).append(" ");
        }
        if (entry.closest_to !== null) {
            var text = entry.closest.toFixed(2) + " with " + entry.closest_to;
            var $score = entry.report ? $("<a/>").attr("href", entry.report).attr("target", "_blank") : $("<span/>");
            $cell.append($score.addClass("aicourse-similarity-score").text(text));
        } else {
            $cell.append($("<span/>").addClass("aicourse-similarity-score").text("0.00"));
        }
        if (entry.flagged) {
            $cell.append(" ").append(label("danger", "flagged",
                "At or above the threshold " + similarity.threshold.toFixed(2) + ": read the passages"));
        }
        if (entry.mostly_solution) {
            $cell.append(" ").append(label("warning", Math.round(entry.solution_share * 100) + "% solution",
                "Mostly the instructor's solution (taken out before pairs are compared)"));
        }
    };

    insertRow = function (table) {
        var row = originalInsertRow(table);
        row.append($("<td/>").addClass("text-center aicourse-similarity"));
        return row;
    };

    SubmissionUI.prototype.render = function () {
        originalRender.apply(this, arguments);
        fill(this.$el.find(".aicourse-similarity"), this.model.get("student"));
    };

    loadSubmissions = function () {
        var $table = $("#main-table").parent();
        $table.find("thead tr").append($("<th/>").addClass("text-center aicourse-similarity-header").text("Similarity"));
        $("#main-table tr").append($("<td/>"));
        // With the _xsrf cookie as a header, as nbgrader's own requests (backbone_xsrf.js): JupyterHub
        // takes a service's login cookie on a script's request only with it.
        $.ajax({
            url: base_url + "/aicourse/similarity/" + encodeURIComponent(assignment_id) + ".json",
            dataType: "json",
            headers: {"X-CSRFToken": getCookie("_xsrf")}
        })
            .done(function (data) { similarity = data.available ? data : null; })
            .always(function () { originalLoadSubmissions(); });
    };
})();
