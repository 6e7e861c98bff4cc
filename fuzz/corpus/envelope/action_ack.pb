
pb-k1
action_ack"t(2
pb-a1ok