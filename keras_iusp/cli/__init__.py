"""The ``keras-iusp`` command line (:mod:`.main`) and its argument types.
"""
