"""Unknown names get one line with close matches and a way to see every name."""

from sim.errors import UnknownNameError


def test_unknown_name_with_a_list_command_points_at_it_and_suggests_close_matches():
    msg = str(UnknownNameError("model", "llama3-7b", ["llama3-8b", "llama3-70b", "gpt2-124m"]))
    assert msg.startswith("unknown model 'llama3-7b'; did you mean: llama3-70b, llama3-8b")
    assert "run `clustersim model list` to see all" in msg and "\n" not in msg


def test_unknown_name_without_a_list_command_lists_the_known_names():
    msg = str(UnknownNameError("scenario", "rofline", ["roofline", "moe_capacity"]))
    assert msg == ("unknown scenario 'rofline'; did you mean: roofline "
                   "(known: moe_capacity, roofline)")
    assert "clustersim scenario list" not in msg
