# The reference's video graph: every edge above tau kept (memory quadratic in
# tokens; FBMS needed ~350 GB in the reference), no eps, alpha fixed to 0.5.
_base_ = ['./tokencut-video_dino-vits16_davis2016.py']
model = dict(faithful=True, eps=0.0, edges_per_token=None)
