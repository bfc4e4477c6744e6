"""RepairQueues: merging NAKs by maximum, discounting what is in flight, and the catch-up."""

from __future__ import annotations

from protocol.repairs import RepairQueues

K = (40, 39)  # two groups


def merge(q: RepairQueues, index: int, counts: list[int] | None, seq_seen: int = 0,
          whole: bool = False, defer: bool = False, credit: float = 1e9) -> int:
    return q.merge_need(index, K, counts, seq_seen, whole, defer, credit)


def test_naks_merge_by_maximum_and_count_what_they_added() -> None:
    q = RepairQueues()
    assert merge(q, 3, [2, 5]) == 7
    assert merge(q, 3, [4, 1]) == 2
    assert q.pending == {3: [4, 5]}
    assert merge(q, 3, [1, 1]) == 0
    assert q.grew


def test_nothing_is_owed_for_a_complete_group_nor_more_than_k() -> None:
    q = RepairQueues()
    assert merge(q, 0, [0, 0]) == 0
    assert q.pending == {} and not q.grew
    merge(q, 0, [500, 0])
    assert q.pending == {0: [40, 0]}


def test_a_wrong_layout_or_no_counts_asks_for_the_whole_block() -> None:
    q = RepairQueues()
    merge(q, 1, [1, 1, 1])
    merge(q, 2, None)
    assert q.pending == {1: [40, 39], 2: [40, 39]}


def test_repairs_sent_after_the_receivers_seq_seen_are_in_flight() -> None:
    q = RepairQueues()
    log = q.log_of(5)
    log.extend([(100, 0), (101, 1), (102, 0)])
    assert merge(q, 5, [3, 3], seq_seen=100) == (3 - 1) + (3 - 1)
    assert merge(q, 6, [3, 3], seq_seen=100) == 6  # another block's log
    q.pending.clear()
    assert merge(q, 5, [3, 3], seq_seen=102) == 6  # all of them went by: lost


def test_whole_blocks_and_deferred_needs_wait_for_the_catch_up() -> None:
    q = RepairQueues()
    assert merge(q, 7, None, whole=True) == 0
    assert merge(q, 7, None, whole=True) == 0  # owed already: a late joiner repeats itself
    assert merge(q, 8, [2, 2], defer=True) == 0  # a lagging receiver's
    assert q.catchup == {7: [40, 39], 8: [2, 2]} and q.pending == {}
    assert q.backlog() == 79 + 4


def test_a_need_beyond_the_credit_waits_for_the_catch_up() -> None:
    q = RepairQueues()
    assert merge(q, 1, [30, 30], credit=50) == 0
    assert q.catchup == {1: [30, 30]} and q.pending == {}
    assert merge(q, 2, [30, 0], credit=50) == 30
    assert q.pending == {2: [30, 0]}


def test_a_block_owed_whole_is_served_at_once_when_someone_needs_part_of_it() -> None:
    q = RepairQueues()
    merge(q, 4, None, whole=True)
    assert merge(q, 4, [2, 0]) == 79  # all of it, now, if the credit covers it
    assert q.pending == {4: [40, 39]} and q.catchup == {}
    q = RepairQueues()
    merge(q, 4, None, whole=True)
    assert merge(q, 4, [2, 0], credit=10) == 2  # else only this receiver's own need
    assert q.pending == {4: [2, 0]} and q.catchup == {4: [40, 39]}


def test_a_deferred_need_of_a_block_being_repaired_joins_that_repair() -> None:
    q = RepairQueues()
    merge(q, 3, [1, 1])
    assert merge(q, 3, [5, 0], defer=True) == 4
    assert q.pending == {3: [5, 1]} and q.catchup == {}


def test_pruning_forgets_what_everyone_has_seen() -> None:
    q = RepairQueues()
    q.log_of(1).extend([(10, 0), (11, 0)])
    q.log_of(2).extend([(12, 1), (13, 0)])
    q.prune(12)
    assert {i: list(log) for i, log in q.sent_log.items()} == {2: [(13, 0)]}
    q.prune(13)
    assert q.sent_log == {}
